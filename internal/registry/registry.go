// Package registry keeps the instances that backend services register at
// run time: it validates registrations (addresses against an allow-list,
// never link-local or metadata addresses), persists them in the store,
// expires them when their TTL lapses without a heartbeat, and tells
// watchers the current set of each service after every change. It knows
// nothing of how the gateway routes: the gateway watches it.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// DefaultSweepInterval is how often Run looks for expired instances: an
// instance leaves its pool at most this long after its TTL lapses.
const DefaultSweepInterval = 250 * time.Millisecond

// Limits of a registration.
const (
	MaxWeight        = 1000
	MaxMetadata      = 32
	MaxMetadataKey   = 64
	MaxMetadataValue = 512
	MaxZone          = 64
)

// Options configure a Registry.
type Options struct {
	Store  store.Instances
	Audit  *audit.Recorder
	Logger *slog.Logger
	Policy Policy
	// Now is the clock (default time.Now).
	Now func() time.Time
	// SweepInterval is how often Run expires instances (default 250ms).
	SweepInterval time.Duration
	// Shared says that other gateways use the same store (PostgreSQL):
	// the store, not this registry's memory, is then the truth. Run reads
	// it back every SyncInterval so that instances registered, renewed or
	// removed through another gateway reach this one's pools; a heartbeat
	// or deregistration for an instance this gateway has not seen yet is
	// looked up in the store; and an expiry is confirmed by the store, so
	// that only one gateway removes and audits it, and none removes an
	// instance another has just renewed (shared.go).
	Shared bool
	// SyncInterval is how often Run reads a shared store back (default
	// DefaultSyncInterval).
	SyncInterval time.Duration
}

// Registration is a request to register one instance.
type Registration struct {
	Service  string
	Scheme   string // http (default) or https
	Address  string // an IP address
	Port     int
	Weight   int // 1 to 1000; default 1
	Zone     string
	Metadata map[string]string
	// TTL is how long the registration lives without a heartbeat; 0
	// means the policy's default.
	TTL time.Duration
	// Actor is who registers it, for the audit log.
	Actor string
}

// Set is the routable instances of one service at one moment, ordered by
// ID. It is shared: do not modify it.
type Set struct {
	Service   string
	Instances []store.Instance
}

// Registry is the set of registered instances. It is safe for concurrent
// use.
type Registry struct {
	o      Options
	policy atomic.Pointer[Policy]

	mu       sync.Mutex
	services map[string]map[string]store.Instance
	// storeErrLogged is when a store failure was last logged; those
	// since are counted in storeErrs.
	storeErrLogged time.Time
	storeErrs      int
	watchers       map[string]map[uint64]func(Set)
	nextID         uint64
}

// New returns a registry holding the instances persisted in the store;
// those whose TTL lapsed while the gateway was down are expired now.
func New(ctx context.Context, o Options) (*Registry, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	r := &Registry{o: o, services: map[string]map[string]store.Instance{}, watchers: map[string]map[uint64]func(Set){}}
	r.policy.Store(&o.Policy)
	all, err := o.Store.ListInstances(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("registry: reading registered instances: %w", err)
	}
	for _, in := range all {
		m := r.services[in.Service]
		if m == nil {
			m = map[string]store.Instance{}
			r.services[in.Service] = m
		}
		m[in.ID] = in
	}
	r.Sweep(ctx)
	return r, nil
}

// SetPolicy replaces the policy (on reload). Registered instances stay;
// the new policy applies to later registrations.
func (r *Registry) SetPolicy(p Policy) { r.policy.Store(&p) }

// Error is a registration refused for a reason the caller can fix.
type Error struct {
	Kind Kind
	Msg  string
}

// Kind classifies an Error.
type Kind int

// Error kinds.
const (
	Invalid    Kind = iota // malformed registration
	NotAllowed             // the address is refused by policy
	NotFound               // no such instance
	Full                   // the service has too many instances, or the registry too many services
)

func (e *Error) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &Error{Kind: Invalid, Msg: fmt.Sprintf(format, args...)}
}

// InstanceID is the ID of the instance at addr:port.
func InstanceID(addr netip.Addr, port int) string {
	return net.JoinHostPort(addr.String(), strconv.Itoa(port))
}

// Check validates a registration against the current policy and returns
// the instance it would create (without times).
func (r *Registry) Check(reg Registration) (store.Instance, error) {
	p := r.policy.Load()
	if !config.ValidName(reg.Service) {
		return store.Instance{}, invalid("service name %q must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit", reg.Service)
	}
	if reg.Scheme == "" {
		reg.Scheme = "http"
	}
	if reg.Scheme != "http" && reg.Scheme != "https" {
		return store.Instance{}, invalid("scheme must be http or https, not %q", reg.Scheme)
	}
	addr, err := netip.ParseAddr(reg.Address)
	if err != nil || addr.Zone() != "" {
		return store.Instance{}, invalid("address %q must be an IP address without a zone; host names are not accepted (what they resolve to could change after the check)", reg.Address)
	}
	addr = addr.Unmap()
	if err := p.CheckAddress(addr); err != nil {
		return store.Instance{}, &Error{Kind: NotAllowed, Msg: "address refused: " + err.Error()}
	}
	if reg.Port < 1 || reg.Port > 65535 {
		return store.Instance{}, invalid("port must be between 1 and 65535")
	}
	if reg.Weight == 0 {
		reg.Weight = 1
	}
	if reg.Weight < 1 || reg.Weight > MaxWeight {
		return store.Instance{}, invalid("weight must be between 1 and %d", MaxWeight)
	}
	if len(reg.Zone) > MaxZone || !printable(reg.Zone) {
		return store.Instance{}, invalid("zone must be at most %d printable characters", MaxZone)
	}
	if len(reg.Metadata) > MaxMetadata {
		return store.Instance{}, invalid("at most %d metadata entries", MaxMetadata)
	}
	for k, v := range reg.Metadata {
		if !validMetadataKey(k) {
			return store.Instance{}, invalid("metadata key %q must be 1-%d letters, digits, '_', '-', '.', ':' or '/'", k, MaxMetadataKey)
		}
		if len(v) > MaxMetadataValue || !printable(v) {
			return store.Instance{}, invalid("metadata %q must be at most %d printable characters", k, MaxMetadataValue)
		}
	}
	ttl := reg.TTL
	if ttl == 0 {
		ttl = p.DefaultTTL
	}
	if ttl < config.MinRegistryTTL || ttl > p.MaxTTL {
		return store.Instance{}, invalid("ttl must be between %s and %s", config.MinRegistryTTL, p.MaxTTL)
	}
	return store.Instance{
		Service: reg.Service, ID: InstanceID(addr, reg.Port), Scheme: reg.Scheme,
		Address: addr.String(), Port: reg.Port, Weight: reg.Weight, Zone: reg.Zone,
		Metadata: maps.Clone(reg.Metadata), TTL: ttl, Actor: reg.Actor,
	}, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func validMetadataKey(k string) bool {
	if k == "" || len(k) > MaxMetadataKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':' || c == '/') {
			return false
		}
	}
	return true
}

// Register adds an instance, or renews it when the same address and port
// is registered again. The instance is in its service's set, and watchers
// have been told, when Register returns.
func (r *Registry) Register(ctx context.Context, reg Registration) (store.Instance, error) {
	in, err := r.Check(reg)
	if err != nil {
		r.o.Audit.Record(ctx, audit.Entry{Actor: reg.Actor, Action: audit.ActionInstanceRegister,
			Target: target(reg.Service, net.JoinHostPort(reg.Address, strconv.Itoa(reg.Port))), Outcome: store.OutcomeDenied, Detail: err.Error()})
		return store.Instance{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Now()
	prev, exists := r.lookup(ctx, in.Service, in.ID, now)
	m := r.services[in.Service]
	pol := r.policy.Load()
	if !exists && len(m) >= pol.MaxInstances {
		return store.Instance{}, &Error{Kind: Full, Msg: fmt.Sprintf("service %q already has %d instances, the most registry.max_instances_per_service allows", in.Service, len(m))}
	}
	if m == nil && pol.MaxServices > 0 && len(r.services) >= pol.MaxServices {
		return store.Instance{}, &Error{Kind: Full, Msg: fmt.Sprintf("the registry already has %d services with instances, the most registry.max_services allows", len(r.services))}
	}
	in.Registered, in.Heartbeat, in.Expires = now, now, now.Add(in.TTL)
	if exists {
		in.Registered = prev.Registered
	}
	// The store checks the bounds again, atomically: with gateways
	// sharing it, this one's view may lag the others' registrations.
	switch err := r.o.Store.AddInstance(ctx, in, now, pol.MaxInstances, pol.MaxServices); {
	case errors.Is(err, store.ErrTooManyInstances):
		return store.Instance{}, &Error{Kind: Full, Msg: fmt.Sprintf("service %q already has the %d instances registry.max_instances_per_service allows (counting those registered through other gateways)", in.Service, pol.MaxInstances)}
	case errors.Is(err, store.ErrTooManyServices):
		return store.Instance{}, &Error{Kind: Full, Msg: fmt.Sprintf("the registry already has the %d services with instances registry.max_services allows (counting those registered through other gateways)", pol.MaxServices)}
	case err != nil:
		return store.Instance{}, fmt.Errorf("registry: storing the instance: %w", err)
	}
	if m == nil {
		m = map[string]store.Instance{}
		r.services[in.Service] = m
	}
	m[in.ID] = in
	r.notify(in.Service)
	e := audit.Entry{Actor: in.Actor, Action: audit.ActionInstanceRegister, Target: target(in.Service, in.ID), After: view(in)}
	if exists {
		e.Before = view(prev)
	}
	r.o.Audit.Record(ctx, e)
	return in, nil
}

// Heartbeat renews an instance for another TTL. An instance that expired
// (or was never registered) is NotFound: register it again.
func (r *Registry) Heartbeat(ctx context.Context, service, id string) (store.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Now()
	in, ok := r.lookup(ctx, service, id, now)
	if !ok || !now.Before(in.Expires) {
		return store.Instance{}, &Error{Kind: NotFound, Msg: fmt.Sprintf("service %q has no instance %q; register it again", service, id)}
	}
	in.Heartbeat, in.Expires = now, now.Add(in.TTL)
	// The instance is alive whether or not the store can say so: a full
	// or failing disk must not take every registered instance out of
	// service one TTL later. The stored expiry catches up at the next
	// heartbeat that is saved; only a restart meanwhile would find it
	// expired, and the instance's next heartbeat (404) registers it again.
	if err := r.o.Store.PutInstance(ctx, in); err != nil {
		r.storeFailed("storing a heartbeat", err)
	}
	r.services[service][id] = in
	return in, nil
}

// Deregister removes an instance. It drains: the instance leaves the set
// at once, so it gets no new requests, while requests already sent to it
// finish.
func (r *Registry) Deregister(ctx context.Context, service, id, actor string) (store.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in, ok := r.lookup(ctx, service, id, r.o.Now())
	if !ok {
		return store.Instance{}, &Error{Kind: NotFound, Msg: fmt.Sprintf("service %q has no instance %q", service, id)}
	}
	if err := r.o.Store.DeleteInstance(ctx, service, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		// Drain it all the same: a stopping instance must get no new
		// requests. The stored row expires at the next start.
		r.storeFailed("deleting a deregistered instance", err)
	}
	r.remove(service, id)
	r.o.Audit.Record(ctx, audit.Entry{Actor: actor, Action: audit.ActionInstanceDeregister, Target: target(service, id), Before: view(in)})
	return in, nil
}

func (r *Registry) remove(service, id string) {
	delete(r.services[service], id)
	if len(r.services[service]) == 0 {
		delete(r.services, service)
	}
	r.notify(service)
}

// Sweep expires every instance whose TTL has lapsed and says how many.
func (r *Registry) Sweep(ctx context.Context) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Now()
	n := 0
	for service, m := range r.services {
		for id, in := range m {
			if now.Before(in.Expires) {
				continue
			}
			if r.o.Shared {
				if r.expireShared(ctx, in, now) {
					n++
				}
				continue
			}
			if err := r.o.Store.DeleteInstance(ctx, service, id); err != nil && !errors.Is(err, store.ErrNotFound) {
				// Leave the pool anyway: an expired instance must not get
				// traffic. The stored row is expired again at the next start.
				r.o.Logger.Error("deleting an expired instance from the store", "service", service, "instance", id, "error", err)
			}
			r.remove(service, id)
			r.o.Audit.Record(ctx, audit.Entry{Actor: audit.ActorSystem, Action: audit.ActionInstanceExpire, Target: target(service, id),
				Before: view(in), Detail: fmt.Sprintf("no heartbeat for %s", in.TTL)})
			n++
		}
	}
	return n
}

// Run expires instances every SweepInterval, and with a shared store
// reads it back every SyncInterval, until ctx is done.
func (r *Registry) Run(ctx context.Context) {
	t := time.NewTicker(r.o.SweepInterval)
	defer t.Stop()
	var sync <-chan time.Time
	if r.o.Shared {
		st := time.NewTicker(r.o.SyncInterval)
		defer st.Stop()
		sync = st.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Sweep(ctx)
		case <-sync:
			r.Sync(ctx)
		}
	}
}

// Current returns the set of service now.
func (r *Registry) Current(service string) Set {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set(service)
}

func (r *Registry) set(service string) Set {
	m := r.services[service]
	s := Set{Service: service, Instances: make([]store.Instance, 0, len(m))}
	for _, id := range slices.Sorted(maps.Keys(m)) {
		s.Instances = append(s.Instances, m[id])
	}
	return s
}

// Services returns the names of services with instances, sorted.
func (r *Registry) Services() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.services))
}

// Watch calls fn with the current set of service now, and again after
// every change to it, until the returned stop is called. Calls are
// serialized and made with the registry locked: fn must be quick and
// must not call the registry.
func (r *Registry) Watch(service string, fn func(Set)) (stop func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	id := r.nextID
	if r.watchers[service] == nil {
		r.watchers[service] = map[uint64]func(Set){}
	}
	r.watchers[service][id] = fn
	fn(r.set(service))
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.watchers[service], id)
		if len(r.watchers[service]) == 0 {
			delete(r.watchers, service)
		}
	}
}

func (r *Registry) notify(service string) {
	ws := r.watchers[service]
	if len(ws) == 0 {
		return
	}
	s := r.set(service)
	for _, fn := range ws {
		fn(s)
	}
}

func target(service, id string) string {
	return "services/" + service + "/instances/" + id
}

// view is an instance as the audit log shows it.
func view(in store.Instance) map[string]any {
	return map[string]any{
		"scheme": in.Scheme, "address": in.Address, "port": in.Port, "weight": in.Weight,
		"zone": in.Zone, "metadata": in.Metadata, "ttl": in.TTL.String(),
	}
}

// storeFailed logs a failure to save the registry's state, at most once a
// minute (a failing disk fails every heartbeat); r.mu is held.
func (r *Registry) storeFailed(what string, err error) {
	now := r.o.Now()
	r.storeErrs++
	if !r.storeErrLogged.IsZero() && now.Sub(r.storeErrLogged) < time.Minute {
		return
	}
	r.o.Logger.Error("the registry's store failed; registered instances keep serving from memory", "doing", what, "failures", r.storeErrs, "error", err)
	r.storeErrLogged, r.storeErrs = now, 0
}
