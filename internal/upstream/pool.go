// Package upstream holds what the gateway knows about backends at run
// time: their instances, how to choose one, and the HTTP transports that
// carry requests to them. Transports are kept in a registry keyed by a
// stable ID, so a configuration reload keeps warm connections.
package upstream

import (
	"net/url"
	"sync/atomic"
)

// Instance is one backend instance.
type Instance struct {
	// ID is stable across reloads: the scheme and host:port.
	ID     string
	Scheme string
	Host   string // host:port
	URL    *url.URL
}

// NewInstance parses an instance base URL (scheme://host[:port]).
func NewInstance(raw string) (*Instance, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			host += ":443"
		} else {
			host += ":80"
		}
	}
	return &Instance{ID: u.Scheme + "://" + host, Scheme: u.Scheme, Host: host, URL: u}, nil
}

// Pool is the set of instances of one backend and the choice among them.
type Pool struct {
	Name      string
	instances []*Instance
	next      atomic.Uint64
	// members, once SetDynamic is called, is the static instances plus
	// those added at run time; see members.go.
	members atomic.Pointer[[]*Instance]
}

// NewPool returns a pool over instances, chosen in round-robin order.
func NewPool(name string, instances []*Instance) *Pool {
	return &Pool{Name: name, instances: instances}
}

// Pick returns the next instance, or nil if the pool is empty.
func (p *Pool) Pick() *Instance {
	list := p.current()
	n := uint64(len(list))
	if n == 0 {
		return nil
	}
	return list[(p.next.Add(1)-1)%n]
}

// Instances returns the pool's instances; the slice must not be modified.
func (p *Pool) Instances() []*Instance { return p.current() }
