package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// DefaultSyncInterval is how often a registry on a shared store reads it
// back: an instance registered, renewed or removed through another
// gateway reaches this gateway's pools within it.
const DefaultSyncInterval = 2 * time.Second

// storeCallTimeout bounds each call to a shared store made with the
// registry locked, so that a database that stops answering cannot hold
// the lock (and everything waiting on it) for long.
const storeCallTimeout = 2 * time.Second

// lookup returns the instance (service, id) as this registry knows it.
// With a shared store the store is asked first: another gateway may have
// registered, renewed or deregistered it since the last sync. One live
// there is adopted; one gone there leaves this registry's pool too. When
// the store cannot answer, the registry's own copy stands. r.mu is held.
func (r *Registry) lookup(ctx context.Context, service, id string, now time.Time) (store.Instance, bool) {
	in, ok := r.services[service][id]
	if !r.o.Shared {
		return in, ok
	}
	ctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	got, err := r.o.Store.GetInstance(ctx, service, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if ok {
			r.remove(service, id) // deregistered or expired elsewhere
		}
		return store.Instance{}, false
	case err != nil:
		r.storeFailed("reading an instance another gateway may have registered", err)
		return in, ok
	case !now.Before(got.Expires):
		return in, ok
	}
	r.adopt(got)
	return got, true
}

// adopt puts an instance read from the shared store in its service's set,
// telling the watchers when what they route by changed. r.mu is held.
func (r *Registry) adopt(in store.Instance) {
	m := r.services[in.Service]
	if m == nil {
		m = map[string]store.Instance{}
		r.services[in.Service] = m
	}
	prev, had := m[in.ID]
	m[in.ID] = in
	if !had || !sameRoute(prev, in) {
		r.notify(in.Service)
	}
}

// sameRoute reports whether two versions of an instance route alike: they
// differ at most in when they were last renewed.
func sameRoute(a, b store.Instance) bool {
	return a.Scheme == b.Scheme && a.Address == b.Address && a.Port == b.Port && a.Weight == b.Weight &&
		a.Zone == b.Zone && maps.Equal(a.Metadata, b.Metadata)
}

// expireShared expires an instance whose TTL lapsed in this registry's
// memory, asking the shared store first, and says whether this gateway
// expired it (and audited it). r.mu is held.
func (r *Registry) expireShared(ctx context.Context, in store.Instance, now time.Time) bool {
	ctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	err := r.o.Store.ExpireInstance(ctx, in.Service, in.ID, now)
	switch {
	case err == nil:
		r.remove(in.Service, in.ID)
		r.o.Audit.Record(ctx, audit.Entry{Actor: audit.ActorSystem, Action: audit.ActionInstanceExpire, Target: target(in.Service, in.ID),
			Before: view(in), Detail: fmt.Sprintf("no heartbeat for %s", in.TTL)})
		return true
	case errors.Is(err, store.ErrNotFound):
		// Renewed through another gateway, or already expired or
		// deregistered by one (which audited it).
		got, gerr := r.o.Store.GetInstance(ctx, in.Service, in.ID)
		if gerr == nil && now.Before(got.Expires) {
			r.adopt(got)
			return false
		}
		if gerr != nil && !errors.Is(gerr, store.ErrNotFound) {
			r.storeFailed("reading an expired instance back", gerr)
			return false
		}
		r.remove(in.Service, in.ID)
		return false
	default:
		// The store cannot say whether another gateway renewed it: keep
		// routing to it, as to every instance this gateway last saw,
		// until the store answers again (see Sync).
		r.storeFailed("expiring an instance", err)
		return false
	}
}

// Sync makes this registry's sets those of the shared store: instances
// registered or renewed through other gateways join (or stay in) their
// pools, those removed through them leave. Watchers hear only of changes
// to what they route by, not of every renewal. A renewal this gateway
// could not save keeps its later expiry; an instance whose TTL lapsed
// stays for the sweep, which expires it once for all gateways. When the
// store cannot be read,
// nothing changes: each gateway keeps routing to the instances it last
// saw, and expiry waits for the store (an outage of the store does not
// empty the pools). It does nothing without a shared store.
func (r *Registry) Sync(ctx context.Context) error {
	if !r.o.Shared {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, min(max(r.o.SyncInterval, time.Second), 5*time.Second))
	defer cancel()
	// The lock is held over the read, as Register and Heartbeat hold it
	// over their writes, so that the list cannot undo a registration made
	// here while it was being read.
	r.mu.Lock()
	defer r.mu.Unlock()
	all, err := r.o.Store.ListInstances(ctx, "")
	if err != nil {
		r.storeFailed("reading the instances of other gateways", err)
		return fmt.Errorf("registry: reading the shared store: %w", err)
	}
	now := r.o.Now()
	stored := map[string]map[string]store.Instance{}
	for _, in := range all {
		if stored[in.Service] == nil {
			stored[in.Service] = map[string]store.Instance{}
		}
		stored[in.Service][in.ID] = in
	}
	for service, m := range r.services {
		for id := range m {
			if _, ok := stored[service][id]; !ok {
				r.remove(service, id) // deregistered or expired elsewhere
			}
		}
	}
	for _, m := range stored {
		for _, in := range m {
			cur, ok := r.services[in.Service][in.ID]
			if !ok && !now.Before(in.Expires) {
				continue // lapsed before this gateway saw it
			}
			if ok && cur.Expires.After(in.Expires) {
				// Renewed here by a heartbeat the store did not take.
				in.Heartbeat, in.Expires = cur.Heartbeat, cur.Expires
			}
			r.adopt(in)
		}
	}
	return nil
}
