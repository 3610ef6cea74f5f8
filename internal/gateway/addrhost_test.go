package gateway

import (
	"net"
	"net/netip"
	"testing"
)

// addrHost gives what net.SplitHostPort gives for the addresses a server
// reports, and for a few it does not.
func TestAddrHost_SameAsSplitHostPort(t *testing.T) {
	addrs := []string{"", "1.2.3.4", "1.2.3.4:", ":80", "[::1]", "::1", "1.2.3.4:80:90", "[::1]:80", "[fe80::1%eth0]:443", "host:80"}
	for _, a := range []string{"0.0.0.0", "127.0.0.1", "192.0.2.255", "::1", "2001:db8::1", "::ffff:192.0.2.1"} {
		for _, port := range []uint16{0, 1, 80, 65535} {
			addrs = append(addrs, netip.AddrPortFrom(netip.MustParseAddr(a), port).String())
		}
	}
	for _, a := range addrs {
		want, _, err := net.SplitHostPort(a)
		got, ok := addrHost(a)
		if ok != (err == nil) || ok && got != want {
			t.Errorf("addrHost(%q) = %q, %v; SplitHostPort: %q, %v", a, got, ok, want, err)
		}
	}
}
