package gateway

import (
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// InstanceSource supplies the instances of services registered at run
// time (the service registry). WatchInstances calls update with the base
// URLs (scheme://host:port) of service's instances now and after every
// change, until stop is called; update is quick and never blocks.
type InstanceSource interface {
	WatchInstances(service string, update func(urls []string)) (stop func())
}

// memberBinding ties a backend pool of a snapshot to a registered service.
type memberBinding struct {
	service string
	pool    *upstream.Pool
	stop    func()
}

// registryBackend notes that backend b's pool also takes the instances
// registered for its service; the gateway binds it when the snapshot is
// about to serve.
func (c *compiler) registryBackend(b *config.Backend, be *backend) {
	if b.Registry == nil {
		return
	}
	c.snap.members = append(c.snap.members, &memberBinding{service: b.Registry.Service, pool: be.pool})
}

// bindMembers starts feeding the snapshot's registry-backed pools. The
// first update happens before it returns, so the snapshot serves
// registered instances from its first request.
func (s *Snapshot) bindMembers(src InstanceSource) {
	if src == nil {
		return
	}
	for _, m := range s.members {
		pool := m.pool
		m.stop = src.WatchInstances(m.service, func(urls []string) {
			list := make([]*upstream.Instance, 0, len(urls))
			for _, u := range urls {
				if in, err := upstream.NewInstance(u); err == nil {
					list = append(list, in)
				}
			}
			pool.SetDynamic(list)
		})
	}
}

// unbindMembers stops the updates of a snapshot that no longer serves new
// requests; requests still on it keep the instances they have.
func (s *Snapshot) unbindMembers() {
	if s == nil {
		return
	}
	for _, m := range s.members {
		if m.stop != nil {
			m.stop()
		}
	}
}
