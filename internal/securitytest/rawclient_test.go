package securitytest_test

import (
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/securitytest"
)

type securitytestExchange = securitytest.Exchange

// sendRaw sends raw on a new connection and collects the answers until
// the gateway closes the connection or is silent for 300ms.
func sendRaw(addr string, raw []byte) (*securitytest.Exchange, error) {
	return securitytest.SendRaw(addr, raw, 300*time.Millisecond, 5*time.Second)
}
