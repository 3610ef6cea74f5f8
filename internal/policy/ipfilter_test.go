package policy

import (
	"net/netip"
	"testing"
)

func TestIPFilter_Decisions(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	cases := []struct {
		name   string
		o      IPFilterOptions
		ip     string
		passed bool
	}{
		{"allow list match", IPFilterOptions{Allow: pfx("10.0.0.0/8")}, "10.1.2.3", true},
		{"allow list miss", IPFilterOptions{Allow: pfx("10.0.0.0/8")}, "192.0.2.1", false},
		{"deny list match", IPFilterOptions{Deny: pfx("192.0.2.0/24")}, "192.0.2.1", false},
		{"deny list miss", IPFilterOptions{Deny: pfx("192.0.2.0/24")}, "198.51.100.1", true},
		{"deny wins over allow", IPFilterOptions{Allow: pfx("10.0.0.0/8"), Deny: pfx("10.9.0.0/16")}, "10.9.0.1", false},
		{"IPv6", IPFilterOptions{Allow: pfx("2001:db8::/32")}, "2001:db8::1", true},
		{"IPv4-mapped IPv6 is IPv4", IPFilterOptions{Deny: pfx("192.0.2.0/24")}, "::ffff:192.0.2.1", false},
		{"unknown address with an allow list", IPFilterOptions{Allow: pfx("0.0.0.0/0")}, "", false},
		{"unknown address with only a deny list", IPFilterOptions{Deny: pfx("0.0.0.0/0")}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err, passed := run(IPFilter(tc.o), request("GET", "/", tc.ip, nil, nil))
			if passed != tc.passed {
				t.Fatalf("passed %v, want %v", passed, tc.passed)
			}
			if !passed && (err == nil || err.Status != 403 || err.Reason != "ip_denied") {
				t.Fatalf("err %v", err)
			}
		})
	}
}
