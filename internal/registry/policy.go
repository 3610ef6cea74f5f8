package registry

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// Policy is what may be registered: the networks addresses must be in,
// and the TTL bounds.
type Policy struct {
	// Allowed are the networks a registered address must be in.
	Allowed []netip.Prefix
	// AllowLoopback accepts loopback addresses (development).
	AllowLoopback bool
	DefaultTTL    time.Duration
	MaxTTL        time.Duration
	// MaxInstances bounds the registered instances of one service.
	MaxInstances int
	// MaxServices bounds the services with registered instances.
	MaxServices int
}

// PolicyFromConfig compiles the registry section of a validated
// configuration.
func PolicyFromConfig(c config.Registry) (Policy, error) {
	p := Policy{
		AllowLoopback: c.AllowLoopback,
		DefaultTTL:    c.DefaultTTL.Or(config.DefaultRegistryTTL),
		MaxTTL:        c.MaxTTL.Or(config.DefaultRegistryMaxTTL),
		MaxInstances:  c.MaxInstances,
	}
	if p.MaxInstances == 0 {
		p.MaxInstances = config.DefaultMaxInstances
	}
	p.MaxServices = c.MaxServices
	if p.MaxServices == 0 {
		p.MaxServices = config.DefaultMaxServices
	}
	cidrs := c.AllowedCIDRs
	if cidrs == nil {
		cidrs = strings.Split(config.DefaultRegistryAllowed, ",")
	}
	for _, s := range cidrs {
		pfx, err := config.ParsePrefix(s)
		if err != nil {
			return Policy{}, err
		}
		p.Allowed = append(p.Allowed, pfx)
	}
	return p, nil
}

// metadataAddrs are cloud instance and task metadata services. Pointing
// the gateway at one would let a registrar read the gateway's own
// credentials through it, so they are refused whatever the allow-list
// says.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, Azure, GCP, OpenStack instance metadata
	netip.MustParseAddr("169.254.170.2"),   // ECS task metadata and credentials (v2)
	netip.MustParseAddr("fd00:ec2::254"),   // AWS instance metadata over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud metadata
}

// nat64 is the well-known NAT64 prefix: an address in it reaches the IPv4
// address in its last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// CheckAddress reports why a may not be registered, or nil. Link-local,
// metadata, unspecified, multicast and broadcast addresses are always
// refused; loopback unless AllowLoopback; anything else must be in an
// allowed network.
func (p *Policy) CheckAddress(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if err := p.checkAlways(v4); err != nil {
			return fmt.Errorf("%s reaches %s through NAT64: %w", a, v4, err)
		}
	}
	if err := p.checkAlways(a); err != nil {
		return err
	}
	if a.IsLoopback() {
		if p.AllowLoopback {
			return nil
		}
		return fmt.Errorf("%s is a loopback address; loopback is refused unless registry.allow_loopback is true (for development)", a)
	}
	for _, pfx := range p.Allowed {
		if pfx.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("%s is not in registry.allowed_cidrs", a)
}

func (p *Policy) checkAlways(a netip.Addr) error {
	for _, m := range metadataAddrs {
		if a == m {
			return fmt.Errorf("%s is a cloud metadata address and is never accepted", a)
		}
	}
	switch {
	case !a.IsValid():
		return fmt.Errorf("not an IP address")
	case a.IsUnspecified():
		return fmt.Errorf("%s is the unspecified address", a)
	case a.IsLinkLocalUnicast():
		return fmt.Errorf("%s is a link-local address (169.254.0.0/16, fe80::/10) and is never accepted", a)
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return fmt.Errorf("%s is a multicast address", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%s is the broadcast address", a)
	}
	return nil
}
