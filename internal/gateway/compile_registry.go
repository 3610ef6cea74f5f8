package gateway

import (
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// RegistrySource is the source name of the instances a backend takes
// from the service registry (next to StaticSource).
const RegistrySource = "registry"

// InstanceSource supplies the instances of services registered at run
// time (the service registry). WatchInstances calls update with service's
// instances (base URL scheme://host:port and weight) now and after every
// change, until stop is called; update is quick and never blocks.
type InstanceSource interface {
	WatchInstances(service string, update func([]upstream.InstanceSpec)) (stop func())
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
// registered instances from its first request. Pools outlive snapshots:
// a backend that no longer takes registered instances has them removed
// (they drain).
func (s *Snapshot) bindMembers(src InstanceSource, logger interface{ Error(string, ...any) }) {
	bound := map[*upstream.Pool]bool{}
	for _, m := range s.members {
		bound[m.pool] = true
		if src == nil {
			continue
		}
		pool, service := m.pool, m.service
		m.stop = src.WatchInstances(service, func(specs []upstream.InstanceSpec) {
			if err := pool.SetInstances(RegistrySource, specs); err != nil {
				logger.Error("registered instances refused", "service", service, "error", err)
			}
		})
	}
	for _, b := range s.upstreams {
		if !bound[b.pool] {
			_ = b.pool.SetInstances(RegistrySource, nil)
		}
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
