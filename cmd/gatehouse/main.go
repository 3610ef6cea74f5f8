// Command gatehouse is an identity-aware API gateway. See the README and
// 'gatehouse --help'.
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/gatehouse-dev/gatehouse/internal/cli"
)

// defaultGCPercent trades memory for CPU: a gateway's live heap is small
// (tens of MB) and its allocation rate high, so collecting less often
// saves CPU on every request (docs/performance.md). GOGC and GOMEMLIMIT,
// when set, decide instead.
const defaultGCPercent = 400

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
