package registry_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/registry"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	reg   *registry.Registry
	st    *sqlite.Store
	clock *clock
	dir   string
}

func newFixture(t *testing.T, mod func(*config.Registry)) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), clock: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	f.open(t, mod)
	return f
}

func (f *fixture) open(t *testing.T, mod func(*config.Registry)) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), f.dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var c config.Registry
	if mod != nil {
		mod(&c)
	}
	p, err := registry.PolicyFromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := registry.New(context.Background(), registry.Options{
		Store: st, Audit: audit.NewRecorder(st, logger, f.clock.Now), Logger: logger, Policy: p, Now: f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.reg, f.st = r, st
}

func (f *fixture) audit(t *testing.T) []store.AuditRecord {
	recs, err := f.st.ListAudit(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestRegister_RefusesLinkLocalMetadataAndUnlistedAddresses(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		loopback   bool
		kind       registry.Kind
		want       string // "" = accepted
	}{
		{"private IPv4", "10.1.2.3", false, 0, ""},
		{"private IPv6 (ULA)", "fd12:3456::1", false, 0, ""},
		{"IPv4-mapped private", "::ffff:10.1.2.3", false, 0, ""},
		{"AWS metadata", "169.254.169.254", false, registry.NotAllowed, "metadata"},
		{"ECS task metadata", "169.254.170.2", false, registry.NotAllowed, "metadata"},
		{"AWS metadata IPv6", "fd00:ec2::254", false, registry.NotAllowed, "metadata"},
		{"metadata as IPv4-mapped IPv6", "::ffff:169.254.169.254", false, registry.NotAllowed, "metadata"},
		{"metadata through NAT64", "64:ff9b::a9fe:a9fe", false, registry.NotAllowed, "NAT64"},
		{"link-local IPv4", "169.254.10.1", false, registry.NotAllowed, "link-local"},
		{"link-local IPv6", "fe80::1", false, registry.NotAllowed, "link-local"},
		{"loopback by default", "127.0.0.1", false, registry.NotAllowed, "allow_loopback"},
		{"IPv6 loopback by default", "::1", false, registry.NotAllowed, "allow_loopback"},
		{"loopback when allowed", "127.0.0.1", true, 0, ""},
		{"metadata even with loopback allowed", "169.254.169.254", true, registry.NotAllowed, "metadata"},
		{"public address not listed", "8.8.8.8", false, registry.NotAllowed, "allowed_cidrs"},
		{"unspecified", "0.0.0.0", false, registry.NotAllowed, "unspecified"},
		{"multicast", "224.0.0.1", false, registry.NotAllowed, "multicast"},
		{"host name", "orders.internal", false, registry.Invalid, "host names are not accepted"},
		{"zone", "fe80::1%eth0", false, registry.Invalid, "without a zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *config.Registry) { c.AllowLoopback = tc.loopback })
			_, err := f.reg.Register(context.Background(), registry.Registration{Service: "orders", Address: tc.addr, Port: 8080, Actor: "key:ci"})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *registry.Error
			if !errors.As(err, &re) || re.Kind != tc.kind || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want kind %d mentioning %q", err, tc.kind, tc.want)
			}
			if n := len(f.reg.Current("orders").Instances); n != 0 {
				t.Fatalf("refused instance is in the set (%d)", n)
			}
			recs := f.audit(t)
			if len(recs) != 1 || recs[0].Outcome != store.OutcomeDenied || recs[0].Actor != "key:ci" {
				t.Fatalf("refusal not audited: %+v", recs)
			}
		})
	}
}

func TestRegister_ValidatesFields(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name string
		mod  func(*registry.Registration)
		want string
	}{
		{"bad service", func(r *registry.Registration) { r.Service = "../x" }, "service name"},
		{"port 0", func(r *registry.Registration) { r.Port = 0 }, "port"},
		{"port too big", func(r *registry.Registration) { r.Port = 70000 }, "port"},
		{"weight", func(r *registry.Registration) { r.Weight = 5000 }, "weight"},
		{"scheme", func(r *registry.Registration) { r.Scheme = "ftp" }, "scheme"},
		{"ttl too short", func(r *registry.Registration) { r.TTL = time.Millisecond }, "ttl"},
		{"ttl too long", func(r *registry.Registration) { r.TTL = time.Hour }, "ttl"},
		{"metadata key", func(r *registry.Registration) { r.Metadata = map[string]string{"a b": "x"} }, "metadata key"},
		{"metadata value", func(r *registry.Registration) { r.Metadata = map[string]string{"a": "x\ny"} }, "printable"},
		{"zone", func(r *registry.Registration) { r.Zone = strings.Repeat("z", 65) }, "zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80}
			tc.mod(&reg)
			_, err := f.reg.Register(context.Background(), reg)
			var re *registry.Error
			if !errors.As(err, &re) || re.Kind != registry.Invalid || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v", err)
			}
		})
	}
}

func TestWatch_SeesRegistrationAtOnceAndExpiryAfterTTL(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	var mu sync.Mutex
	var seen []int
	stop := f.reg.Watch("orders", func(s registry.Set) {
		mu.Lock()
		seen = append(seen, len(s.Instances))
		mu.Unlock()
	})
	defer stop()
	in, err := f.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80, TTL: 10 * time.Second,
		Zone: "eu-west-1a", Metadata: map[string]string{"task_arn": "arn:aws:ecs:x"}, Actor: "key:ci"})
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "10.0.0.1:80" || !in.Expires.Equal(f.clock.Now().Add(10*time.Second)) {
		t.Fatalf("instance = %+v", in)
	}
	mu.Lock()
	if len(seen) != 2 || seen[0] != 0 || seen[1] != 1 {
		t.Fatalf("watcher saw %v, want [0 1] before Register returned", seen)
	}
	mu.Unlock()

	// A heartbeat renews it; without one it expires.
	f.clock.Add(8 * time.Second)
	if _, err := f.reg.Heartbeat(ctx, "orders", in.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(8 * time.Second)
	if n := f.reg.Sweep(ctx); n != 0 {
		t.Fatalf("swept %d instances after a heartbeat", n)
	}
	f.clock.Add(2 * time.Second)
	if n := f.reg.Sweep(ctx); n != 1 {
		t.Fatalf("swept %d instances after the TTL", n)
	}
	mu.Lock()
	if seen[len(seen)-1] != 0 {
		t.Fatalf("watcher saw %v, want the instance gone", seen)
	}
	mu.Unlock()
	if _, err := f.reg.Heartbeat(ctx, "orders", in.ID); err == nil {
		t.Fatal("heartbeat of an expired instance succeeded")
	}
	if _, err := f.st.GetInstance(ctx, "orders", in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired instance still stored: %v", err)
	}
	recs := f.audit(t)
	last := recs[len(recs)-1]
	if last.Action != audit.ActionInstanceExpire || last.Actor != audit.ActorSystem || !strings.Contains(last.Before, "eu-west-1a") {
		t.Fatalf("expiry audit = %+v", last)
	}
}

func TestDeregister_RemovesAndAudits(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	in, _ := f.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80})
	if _, err := f.reg.Deregister(ctx, "orders", in.ID, "key:ci"); err != nil {
		t.Fatal(err)
	}
	if len(f.reg.Current("orders").Instances) != 0 || len(f.reg.Services()) != 0 {
		t.Fatal("instance still registered")
	}
	if _, err := f.reg.Deregister(ctx, "orders", in.ID, "key:ci"); err == nil {
		t.Fatal("second deregistration succeeded")
	}
	recs := f.audit(t)
	if last := recs[len(recs)-1]; last.Action != audit.ActionInstanceDeregister || last.Actor != "key:ci" {
		t.Fatalf("audit = %+v", last)
	}
}

func TestNew_KeepsRegistrationsAcrossRestartUntilTheirTTL(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80, TTL: 10 * time.Second})
	f.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.2", Port: 80, TTL: time.Minute})
	f.st.Close()
	f.clock.Add(30 * time.Second)
	f.open(t, nil)
	got := f.reg.Current("orders").Instances
	if len(got) != 1 || got[0].ID != "10.0.0.2:80" {
		t.Fatalf("after restart: %+v", got)
	}
}

func TestRegister_MaxInstancesPerService(t *testing.T) {
	f := newFixture(t, func(c *config.Registry) { c.MaxInstances = 2 })
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		_, err := f.reg.Register(ctx, registry.Registration{Service: "orders", Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}).String(), Port: 80})
		if (err == nil) != want {
			t.Fatalf("registration %d: %v", i, err)
		}
	}
	// Renewing an existing one is not a new instance.
	if _, err := f.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
}

// A registrar allowed every service cannot create services without end:
// past registry.max_services a registration into a new service is Full,
// while the existing services still take instances, and a service that
// loses its last instance frees its place.
func TestRegister_MaxServices(t *testing.T) {
	f := newFixture(t, func(c *config.Registry) { c.MaxServices = 2 })
	ctx := context.Background()
	reg := func(service, addr string) error {
		_, err := f.reg.Register(ctx, registry.Registration{Service: service, Address: addr, Port: 80})
		return err
	}
	if err := reg("a", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := reg("b", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	var re *registry.Error
	if err := reg("c", "10.0.0.3"); !errors.As(err, &re) || re.Kind != registry.Full {
		t.Fatalf("a third service: %v, want Full", err)
	}
	if err := reg("a", "10.0.0.4"); err != nil {
		t.Fatalf("another instance of an existing service: %v", err)
	}
	if _, err := f.reg.Deregister(ctx, "b", "10.0.0.2:80", "test"); err != nil {
		t.Fatal(err)
	}
	if err := reg("c", "10.0.0.3"); err != nil {
		t.Fatalf("after b left: %v", err)
	}
}

// A store that can no longer write (a full disk, a closed database) does
// not take registered instances out of service: heartbeats keep them in
// their pool, and a deregistration still drains its instance.
func TestHeartbeat_KeepsServingWhenTheStoreFails(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	a, err := f.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80, TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.2", Port: 80, TTL: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	f.st.Close()
	for range 3 {
		f.clock.Add(8 * time.Second)
		if _, err := f.reg.Heartbeat(ctx, "orders", a.ID); err != nil {
			t.Fatalf("heartbeat with the store failing: %v", err)
		}
		f.reg.Sweep(ctx)
	}
	got := f.reg.Current("orders").Instances
	if len(got) != 1 || got[0].ID != a.ID {
		t.Fatalf("instances %+v, want the one that sent heartbeats (the other expired)", got)
	}
	if _, err := f.reg.Deregister(ctx, "orders", a.ID, "key:ci"); err != nil {
		t.Fatalf("deregistration with the store failing: %v", err)
	}
	if n := len(f.reg.Current("orders").Instances); n != 0 {
		t.Fatalf("%d instances after deregistration, want it drained", n)
	}
}
