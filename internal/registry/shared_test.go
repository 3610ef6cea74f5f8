package registry_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
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

// gateway is one of several gateways sharing a store: its own handle on
// the store (as each replica has its own connection pool) and its own
// registry, on a clock all of them share.
type gateway struct {
	reg *registry.Registry
	st  *sqlite.Store
}

// sharedGateways opens n registries in shared mode over one store. The
// embedded store opened twice stands in for PostgreSQL here: what is
// tested is the registry's part, and storetest.RunShared checks that
// both stores behave alike under several handles.
func sharedGateways(t *testing.T, n int, clk *clock) []*gateway {
	t.Helper()
	dir := t.TempDir()
	p, err := registry.PolicyFromConfig(config.Registry{})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var gws []*gateway
	for range n {
		st, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		r, err := registry.New(context.Background(), registry.Options{
			Store: st, Audit: audit.NewRecorder(st, logger, clk.Now), Logger: logger, Policy: p, Now: clk.Now,
			Shared: true, SyncInterval: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		gws = append(gws, &gateway{reg: r, st: st})
	}
	return gws
}

func ids(s registry.Set) []string {
	var out []string
	for _, in := range s.Instances {
		out = append(out, in.ID)
	}
	return out
}

func countActions(t *testing.T, st store.AuditLog, action string) int {
	t.Helper()
	recs, err := st.ListAudit(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Action == action {
			n++
		}
	}
	return n
}

// An instance registered through one gateway reaches the pools of the
// others at their next sync, and leaves them when it is deregistered
// through any of them.
func TestShared_RegistrationsReachEveryGateway(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	gws := sharedGateways(t, 2, clk)
	a, b := gws[0], gws[1]
	ctx := context.Background()
	var mu sync.Mutex
	var seen [][]string
	stop := b.reg.Watch("orders", func(s registry.Set) {
		mu.Lock()
		seen = append(seen, ids(s))
		mu.Unlock()
	})
	defer stop()

	in, err := a.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80, TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(b.reg.Current("orders")); len(got) != 0 {
		t.Fatalf("b holds %v before its sync", got)
	}
	if err := b.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ids(b.reg.Current("orders")); len(got) != 1 || got[0] != in.ID {
		t.Fatalf("b after sync: %v, want [%s]", got, in.ID)
	}
	// A renewal alone does not rebuild b's pool.
	clk.Add(5 * time.Second)
	if _, err := a.reg.Heartbeat(ctx, "orders", in.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(seen) != 2 {
		t.Fatalf("b's watcher saw %v, want [[] [%s]]: a renewal is not a change of the pool", seen, in.ID)
	}
	mu.Unlock()
	if got := b.reg.Current("orders").Instances[0].Expires; !got.Equal(clk.Now().Add(10 * time.Second)) {
		t.Fatalf("b's copy expires at %v, want the renewal's %v", got, clk.Now().Add(10*time.Second))
	}

	// Deregistered through b, it leaves a at a's next sync.
	if _, err := b.reg.Deregister(ctx, "orders", in.ID, "key:ci"); err != nil {
		t.Fatal(err)
	}
	if err := a.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ids(a.reg.Current("orders")); len(got) != 0 {
		t.Fatalf("a still routes to %v after b deregistered it", got)
	}
	mu.Lock()
	if last := seen[len(seen)-1]; len(last) != 0 {
		t.Fatalf("b's watcher last saw %v, want the instance gone", last)
	}
	mu.Unlock()
}

// A heartbeat or a deregistration may reach a gateway that has not synced
// since the instance was registered through another (a load balancer in
// front of the gateways' admin listeners): the store answers.
func TestShared_HeartbeatAndDeregisterThroughAGatewayThatHasNotSynced(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	gws := sharedGateways(t, 3, clk)
	a, b, c := gws[0], gws[1], gws[2]
	ctx := context.Background()
	in, err := a.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80, TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(8 * time.Second)
	hb, err := b.reg.Heartbeat(ctx, "orders", in.ID)
	if err != nil {
		t.Fatalf("heartbeat through a gateway that had not synced: %v", err)
	}
	if want := clk.Now().Add(10 * time.Second); !hb.Expires.Equal(want) {
		t.Fatalf("renewed until %v, want %v", hb.Expires, want)
	}
	if got := ids(b.reg.Current("orders")); len(got) != 1 {
		t.Fatalf("b does not route to the instance it renewed: %v", got)
	}
	if _, err := c.reg.Deregister(ctx, "orders", in.ID, "key:ci"); err != nil {
		t.Fatalf("deregistration through a gateway that had not synced: %v", err)
	}
	if _, err := a.st.GetInstance(ctx, "orders", in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("still stored after deregistration: %v", err)
	}
	if n := countActions(t, a.st, audit.ActionInstanceDeregister); n != 1 {
		t.Fatalf("%d deregistrations audited, want 1", n)
	}
	// An instance nobody registered is still unknown.
	if _, err := b.reg.Heartbeat(ctx, "orders", "10.0.0.9:80"); err == nil {
		t.Fatal("heartbeat of an unknown instance succeeded")
	}
}

// The TTL a gateway holds in memory lapses while the instance sends its
// heartbeats to another: the store says it was renewed, so it stays. When
// the heartbeats stop, every gateway expires it and exactly one audits it.
func TestShared_ExpiryIsConfirmedByTheStoreAndAuditedOnce(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	gws := sharedGateways(t, 3, clk)
	ctx := context.Background()
	in, err := gws[0].reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80, TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gws[1:] {
		if err := g.reg.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Heartbeats go to gateway 1 only; 0 and 2 do not sync meanwhile.
	for range 3 {
		clk.Add(8 * time.Second)
		if _, err := gws[1].reg.Heartbeat(ctx, "orders", in.ID); err != nil {
			t.Fatal(err)
		}
		for i, g := range gws {
			if n := g.reg.Sweep(ctx); n != 0 {
				t.Fatalf("gateway %d expired %d instances that another had renewed", i, n)
			}
			if got := ids(g.reg.Current("orders")); len(got) != 1 {
				t.Fatalf("gateway %d routes to %v, want the renewed instance", i, got)
			}
		}
	}
	if n := countActions(t, gws[0].st, audit.ActionInstanceExpire); n != 0 {
		t.Fatalf("%d expiries audited while it was renewed", n)
	}
	clk.Add(11 * time.Second)
	expired := 0
	for _, g := range gws {
		expired += g.reg.Sweep(ctx)
		if got := ids(g.reg.Current("orders")); len(got) != 0 {
			t.Fatalf("a gateway still routes to %v after the TTL", got)
		}
	}
	if expired != 1 {
		t.Fatalf("%d gateways expired the instance, want exactly 1", expired)
	}
	if n := countActions(t, gws[0].st, audit.ActionInstanceExpire); n != 1 {
		t.Fatalf("%d expiries audited, want 1", n)
	}
}

// When the shared store cannot be read, a gateway keeps routing to the
// instances it last saw, even past their TTL: it cannot tell whether
// another gateway renewed them, and an outage of the store must not empty
// its pools. It catches up once the store answers again.
func TestShared_StoreOutageKeepsTheLastKnownPools(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	gws := sharedGateways(t, 2, clk)
	a, b := gws[0], gws[1]
	ctx := context.Background()
	in, err := a.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80, TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	b.st.Close() // b's connection to the store is gone
	clk.Add(30 * time.Second)
	if err := b.reg.Sync(ctx); err == nil {
		t.Fatal("Sync with the store unreachable reported no error")
	}
	b.reg.Sweep(ctx)
	if got := ids(b.reg.Current("orders")); len(got) != 1 || got[0] != in.ID {
		t.Fatalf("b routes to %v during the outage, want the instance it last saw", got)
	}
	// Meanwhile a, which reaches the store, expires it for everyone.
	if n := a.reg.Sweep(ctx); n != 1 {
		t.Fatalf("a expired %d instances, want 1", n)
	}
}

// A heartbeat that reaches a gateway which has not yet synced after the
// instance was deregistered through another does not bring it back.
func TestShared_HeartbeatDoesNotResurrectADeregisteredInstance(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	gws := sharedGateways(t, 2, clk)
	a, b := gws[0], gws[1]
	ctx := context.Background()
	in, err := a.reg.Register(ctx, registry.Registration{Service: "orders", Address: "10.0.0.1", Port: 80, TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.reg.Deregister(ctx, "orders", in.ID, "key:ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.reg.Heartbeat(ctx, "orders", in.ID); err == nil {
		t.Fatal("a heartbeat through a gateway that had not synced renewed a deregistered instance")
	}
	if got := ids(a.reg.Current("orders")); len(got) != 0 {
		t.Fatalf("a still routes to %v", got)
	}
	if _, err := a.st.GetInstance(ctx, "orders", in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the deregistered instance is stored again: %v", err)
	}
}

// The bounds count the instances registered through every gateway, not
// only those the registering gateway has synced: the store checks them.
func TestShared_BoundsCountEveryGatewaysRegistrations(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	gws := sharedGateways(t, 2, clk)
	a, b := gws[0], gws[1]
	p, err := registry.PolicyFromConfig(config.Registry{MaxInstances: 3, MaxServices: 2})
	if err != nil {
		t.Fatal(err)
	}
	a.reg.SetPolicy(p)
	b.reg.SetPolicy(p)
	ctx := context.Background()
	reg := func(g *gateway, service, addr string) error {
		_, err := g.reg.Register(ctx, registry.Registration{Service: service, Address: addr, Port: 80, TTL: time.Minute})
		return err
	}
	for _, addr := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		if err := reg(a, "orders", addr); err != nil {
			t.Fatal(err)
		}
	}
	// b has not synced: it holds none of them, yet refuses a fourth.
	var re *registry.Error
	if err := reg(b, "orders", "10.0.0.4"); !errors.As(err, &re) || re.Kind != registry.Full {
		t.Fatalf("a fourth instance through b = %v, want Full", err)
	}
	if err := reg(b, "billing", "10.0.1.1"); err != nil {
		t.Fatal(err)
	}
	if err := reg(a, "search", "10.0.2.1"); !errors.As(err, &re) || re.Kind != registry.Full || !strings.Contains(re.Msg, "max_services") {
		t.Fatalf("a third service through a = %v, want Full (max_services)", err)
	}
	// A renewal through b of an instance registered through a is not a new one.
	if err := reg(b, "orders", "10.0.0.2"); err != nil {
		t.Fatalf("re-registering a held instance: %v", err)
	}
}
