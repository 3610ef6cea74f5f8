// Package storetest is the behaviour every store implementation must
// have, as one test suite: call Run from the implementation's tests with
// a function that returns a new, empty store.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Run runs the whole suite; newStore must return an empty store, closed
// by the suite.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	open := func(t *testing.T) store.Store {
		s := newStore(t)
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("Instances", func(t *testing.T) { testInstances(t, open(t)) })
	t.Run("Consumers", func(t *testing.T) { testConsumers(t, open(t)) })
	t.Run("KeysRevision", func(t *testing.T) { testKeysRevision(t, open(t)) })
	t.Run("AuditChain", func(t *testing.T) { testAudit(t, open(t)) })
	t.Run("AuditConcurrentAppends", func(t *testing.T) { testAuditConcurrent(t, open(t)) })
	t.Run("ConfigRevisions", func(t *testing.T) { testRevisions(t, open(t)) })
	t.Run("Counters", func(t *testing.T) { testCounters(t, open(t)) })
	t.Run("QuotaCounters", func(t *testing.T) { testQuotaCounters(t, open(t)) })
	t.Run("ExpireInstance", func(t *testing.T) { testExpireInstance(t, open(t)) })
	t.Run("AddInstanceWithinBounds", func(t *testing.T) { testAddInstance(t, open(t)) })
	t.Run("AddQuotaCounts", func(t *testing.T) { testAddQuotaCounts(t, open(t)) })
	t.Run("PublishedKeys", func(t *testing.T) { testPublishedKeys(t, open(t)) })
	t.Run("DashboardSessions", func(t *testing.T) { testDashboardSessions(t, open(t)) })
	t.Run("DashboardLogins", func(t *testing.T) { testDashboardLogins(t, open(t)) })
	t.Run("UpstreamHours", func(t *testing.T) { testUpstreamHours(t, open(t)) })
}

// RunShared runs the cases of several gateways on one store: open returns
// two handles on one new, empty store (as two gateways each have their
// own connection), both closed by the suite.
func RunShared(t *testing.T, open func(t *testing.T) (a, b store.Store)) {
	pair := func(t *testing.T) (store.Store, store.Store) {
		a, b := open(t)
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	}
	t.Run("AuditAppendsFromTwoGateways", func(t *testing.T) { a, b := pair(t); testSharedAudit(t, a, b) })
	t.Run("QuotaAdditionsFromTwoGateways", func(t *testing.T) { a, b := pair(t); testSharedQuota(t, a, b) })
	t.Run("KeysRevisionSeenByTheOther", func(t *testing.T) { a, b := pair(t); testSharedKeysRevision(t, a, b) })
	t.Run("ExpiryRacedByTwoGateways", func(t *testing.T) { a, b := pair(t); testSharedExpiry(t, a, b) })
	t.Run("RegistrationsRacedByTwoGateways", func(t *testing.T) { a, b := pair(t); testSharedAddInstance(t, a, b) })
	t.Run("ConsumerCreationRacedByTwoGateways", func(t *testing.T) { a, b := pair(t); testSharedCreate(t, a, b) })
	t.Run("PublishedKeysSeenByTheOther", func(t *testing.T) { a, b := pair(t); testSharedPublishedKeys(t, a, b) })
	t.Run("DashboardSignInTakenOnce", func(t *testing.T) { a, b := pair(t); testSharedDashboardLogin(t, a, b) })
	t.Run("UpstreamHoursFromTwoGateways", func(t *testing.T) { a, b := pair(t); testSharedUpstreamHours(t, a, b) })
}

func testQuotaCounters(t *testing.T, s store.Store) {
	ctx := context.Background()
	if got, err := s.LoadQuotaCounters(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v, %v", got, err)
	}
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	first := []store.QuotaCounter{
		{API: "orders", Name: "daily", KeySpec: "consumer", Key: "acme", Start: day, Count: 41},
		{API: "orders", Operation: "create", Name: "daily", KeySpec: "consumer", Key: "globex", Start: day, Count: 7},
	}
	if err := s.ReplaceQuotaCounters(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := []store.QuotaCounter{
		{API: "orders", Name: "daily", KeySpec: "consumer", Key: "acme", Start: day, Count: 42},
		{API: "orders", Name: "monthly", KeySpec: "claim:tenant", Key: "t1", Start: day.AddDate(0, 0, -3), Count: 900},
	}
	if err := s.ReplaceQuotaCounters(ctx, second); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadQuotaCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("after replace: %d counters, want 2 (the set is replaced whole): %+v", len(got), got)
	}
	for i, want := range second {
		g := got[i]
		if g.API != want.API || g.Operation != want.Operation || g.Name != want.Name || g.KeySpec != want.KeySpec ||
			g.Key != want.Key || !g.Start.Equal(want.Start) || g.Count != want.Count {
			t.Errorf("counter %d = %+v, want %+v", i, g, want)
		}
	}
}

// t0 has nanoseconds, so that a store that truncates times fails.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func testInstances(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := store.Instance{Service: "orders", ID: "10.0.0.1:8080", Scheme: "http", Address: "10.0.0.1", Port: 8080,
		Weight: 2, Zone: "eu-west-1a", Metadata: map[string]string{"cluster": "prod", "task_arn": "arn:x"},
		TTL: 30 * time.Second, Registered: t0, Heartbeat: t0, Expires: t0.Add(30 * time.Second), Actor: "key:deployer"}
	b := store.Instance{Service: "orders", ID: "10.0.0.2:8080", Scheme: "https", Address: "10.0.0.2", Port: 8080,
		Weight: 1, TTL: time.Minute, Registered: t0, Heartbeat: t0, Expires: t0.Add(time.Minute)}
	c := store.Instance{Service: "payments", ID: "10.0.1.1:9000", Scheme: "http", Address: "10.0.1.1", Port: 9000,
		Weight: 1, TTL: time.Minute, Registered: t0, Heartbeat: t0, Expires: t0.Add(time.Minute)}
	for _, in := range []store.Instance{c, b, a} {
		if err := s.PutInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetInstance(ctx, "orders", a.ID)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("GetInstance = %+v, %v; want %+v", got, err, a)
	}
	list, err := s.ListInstances(ctx, "orders")
	if err != nil || len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Fatalf("ListInstances(orders) = %+v, %v", list, err)
	}
	all, _ := s.ListInstances(ctx, "")
	if len(all) != 3 || all[2].Service != "payments" {
		t.Fatalf("ListInstances(all) = %+v", all)
	}
	// Put replaces.
	a.Heartbeat, a.Expires, a.Metadata = t0.Add(time.Second), t0.Add(31*time.Second), nil
	if err := s.PutInstance(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetInstance(ctx, "orders", a.ID)
	if !got.Expires.Equal(a.Expires) || len(got.Metadata) != 0 {
		t.Fatalf("after replace: %+v", got)
	}
	if err := s.DeleteInstance(ctx, "orders", a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetInstance(ctx, "orders", a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := s.DeleteInstance(ctx, "orders", a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func hash(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func testConsumers(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := store.Consumer{Name: "acme", Groups: []string{"partners"}, Roles: []string{}, Scopes: []string{"orders:read"}, Created: t0, Updated: t0}
	if err := s.CreateConsumer(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateConsumer(ctx, c); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate consumer: %v", err)
	}
	got, err := s.GetConsumer(ctx, "acme")
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("GetConsumer = %+v, %v", got, err)
	}
	if _, err := s.GetConsumer(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown consumer: %v", err)
	}
	if err := s.CreateConsumer(ctx, store.Consumer{Name: "beta", Created: t0, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	list, _ := s.ListConsumers(ctx)
	if len(list) != 2 || list[0].Name != "acme" || list[1].Name != "beta" {
		t.Fatalf("ListConsumers = %+v", list)
	}

	p := store.Key{Consumer: "acme", Slot: store.SlotPrimary, Hash: hash("k1"), Created: t0}
	if err := s.PutKey(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.PutKey(ctx, store.Key{Consumer: "acme", Slot: store.SlotSecondary, Hash: hash("k1"), Created: t0}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same hash in two slots: %v", err)
	}
	if err := s.PutKey(ctx, store.Key{Consumer: "nobody", Slot: store.SlotPrimary, Hash: hash("k9"), Created: t0}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key of unknown consumer: %v", err)
	}
	if err := s.PutKey(ctx, store.Key{Consumer: "acme", Slot: store.SlotSecondary, Hash: hash("k2"), Created: t0}); err != nil {
		t.Fatal(err)
	}
	// Replacing a slot keeps the other.
	p.Hash = hash("k3")
	if err := s.PutKey(ctx, p); err != nil {
		t.Fatal(err)
	}
	keys, _ := s.ListKeys(ctx, "acme")
	if len(keys) != 2 || keys[0].Slot != store.SlotPrimary || keys[0].Hash != hash("k3") || keys[1].Hash != hash("k2") {
		t.Fatalf("ListKeys = %+v", keys)
	}
	if err := s.DeleteKey(ctx, "acme", store.SlotSecondary); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, "acme", store.SlotSecondary); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteKey: %v", err)
	}
	if err := s.PutKey(ctx, store.Key{Consumer: "beta", Slot: store.SlotPrimary, Hash: hash("k4"), Created: t0}); err != nil {
		t.Fatal(err)
	}
	all, _ := s.ListKeys(ctx, "")
	if len(all) != 2 {
		t.Fatalf("ListKeys(all) = %+v", all)
	}
	// Deleting a consumer deletes its keys.
	if err := s.DeleteConsumer(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.ListKeys(ctx, "acme"); len(keys) != 0 {
		t.Fatalf("keys of a deleted consumer: %+v", keys)
	}
	if err := s.DeleteConsumer(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteConsumer: %v", err)
	}
	// The hash of a deleted key can be used again.
	if err := s.CreateConsumer(ctx, store.Consumer{Name: "acme", Created: t0, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutKey(ctx, store.Key{Consumer: "acme", Slot: store.SlotPrimary, Hash: hash("k3"), Created: t0}); err != nil {
		t.Fatalf("reusing the hash of a deleted key: %v", err)
	}
}

func testKeysRevision(t *testing.T, s store.Store) {
	ctx := context.Background()
	rev := func() int64 {
		t.Helper()
		r, err := s.KeysRevision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	last := rev()
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"create consumer", func() error { return s.CreateConsumer(ctx, store.Consumer{Name: "a", Created: t0, Updated: t0}) }},
		{"put key", func() error {
			return s.PutKey(ctx, store.Key{Consumer: "a", Slot: store.SlotPrimary, Hash: hash("x"), Created: t0})
		}},
		{"replace key", func() error {
			return s.PutKey(ctx, store.Key{Consumer: "a", Slot: store.SlotPrimary, Hash: hash("y"), Created: t0})
		}},
		{"delete key", func() error { return s.DeleteKey(ctx, "a", store.SlotPrimary) }},
		{"delete consumer", func() error { return s.DeleteConsumer(ctx, "a") }},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if r := rev(); r == last {
			t.Fatalf("KeysRevision did not change after %s", step.name)
		} else {
			last = r
		}
	}
	// A failed change leaves it alone.
	_ = s.DeleteConsumer(ctx, "a")
	if rev() != last {
		t.Fatal("KeysRevision changed after a failed delete")
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	var prev string
	for i := 1; i <= 5; i++ {
		r, err := s.AppendAudit(ctx, store.AuditRecord{
			Time: t0.Add(time.Duration(i) * time.Second), Actor: "key:ops", Action: "instance.register",
			Target: fmt.Sprintf("services/orders/instances/10.0.0.%d:80", i), Outcome: store.OutcomeSuccess,
			After: `{"port":80}`,
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.Seq != int64(i) || r.PrevHash != prev || r.Hash != store.AuditHash(r) {
			t.Fatalf("record %d: seq %d prev %q hash %q", i, r.Seq, r.PrevHash, r.Hash)
		}
		prev = r.Hash
	}
	recs, err := s.ListAudit(ctx, 0, 100)
	if err != nil || len(recs) != 5 {
		t.Fatalf("ListAudit = %d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if r.Hash != store.AuditHash(r) {
			t.Fatalf("record %d as read back does not hash to its Hash: %+v", i+1, r)
		}
		if !r.Time.Equal(t0.Add(time.Duration(i+1) * time.Second)) {
			t.Fatalf("record %d time %v", i+1, r.Time)
		}
	}
	page, _ := s.ListAudit(ctx, 2, 2)
	if len(page) != 2 || page[0].Seq != 3 || page[1].Seq != 4 {
		t.Fatalf("ListAudit(after 2, limit 2) = %+v", page)
	}
}

func testAuditConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, each = 4, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.AppendAudit(ctx, store.AuditRecord{Actor: fmt.Sprintf("w%d", w), Action: "test", Target: fmt.Sprint(i), Outcome: store.OutcomeSuccess}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	recs, _ := s.ListAudit(ctx, 0, 1000)
	if len(recs) != writers*each {
		t.Fatalf("%d records, want %d", len(recs), writers*each)
	}
	prev := ""
	for i, r := range recs {
		if r.Seq != int64(i+1) || r.PrevHash != prev || r.Hash != store.AuditHash(r) {
			t.Fatalf("chain broken at %d: %+v", i+1, r)
		}
		prev = r.Hash
	}
}

func testRevisions(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, v := range []string{"aaa", "bbb", "ccc"} {
		r, err := s.AddConfigRevision(ctx, store.ConfigRevision{Version: v, Time: t0.Add(time.Duration(i) * time.Minute), Source: "start", Actor: "system", Text: "# version " + v + "\n"})
		if err != nil || r.Seq == 0 {
			t.Fatalf("AddConfigRevision = %+v, %v", r, err)
		}
	}
	got, err := s.ListConfigRevisions(ctx, 2)
	if err != nil || len(got) != 2 || got[0].Version != "ccc" || got[1].Version != "bbb" || !got[0].Time.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("ListConfigRevisions = %+v, %v", got, err)
	}
	if text, err := s.ConfigText(ctx, "bbb"); err != nil || text != "# version bbb\n" {
		t.Fatalf("ConfigText(bbb) = %q, %v", text, err)
	}
	if _, err := s.ConfigText(ctx, "zzz"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ConfigText(zzz): %v, want ErrNotFound", err)
	}
}

func testCounters(t *testing.T, s store.Store) {
	ctx := context.Background()
	win := t0.Add(time.Minute)
	for i, want := range []int64{1, 3, 6} {
		v, err := s.AddCounter(ctx, "quota:acme", int64(i+1), win, t0)
		if err != nil || v != want {
			t.Fatalf("AddCounter #%d = %d, %v; want %d", i, v, err, want)
		}
	}
	if v, _ := s.GetCounter(ctx, "quota:acme", t0); v != 6 {
		t.Fatalf("GetCounter = %d", v)
	}
	if v, _ := s.GetCounter(ctx, "quota:acme", win); v != 0 {
		t.Fatalf("GetCounter after expiry = %d", v)
	}
	// After the window, the counter starts again with the new expiry.
	v, err := s.AddCounter(ctx, "quota:acme", 1, win.Add(time.Minute), win)
	if err != nil || v != 1 {
		t.Fatalf("AddCounter in a new window = %d, %v", v, err)
	}
	if _, err := s.AddCounter(ctx, "quota:other", 1, win, t0); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteExpiredCounters(ctx, win)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredCounters = %d, %v", n, err)
	}
	if v, _ := s.GetCounter(ctx, "quota:acme", win); v != 1 {
		t.Fatalf("live counter removed: %d", v)
	}
}

func testExpireInstance(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := store.Instance{Service: "orders", ID: "10.0.0.1:80", Scheme: "http", Address: "10.0.0.1", Port: 80, Weight: 1,
		TTL: 10 * time.Second, Registered: t0, Heartbeat: t0, Expires: t0.Add(10 * time.Second)}
	if err := s.PutInstance(ctx, in); err != nil {
		t.Fatal(err)
	}
	// Renewed: its expiry is after now.
	if err := s.ExpireInstance(ctx, "orders", in.ID, t0.Add(9*time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ExpireInstance before its expiry = %v, want ErrNotFound", err)
	}
	if _, err := s.GetInstance(ctx, "orders", in.ID); err != nil {
		t.Fatalf("a live instance was removed: %v", err)
	}
	// At its expiry it goes.
	if err := s.ExpireInstance(ctx, "orders", in.ID, in.Expires); err != nil {
		t.Fatalf("ExpireInstance at its expiry = %v", err)
	}
	if _, err := s.GetInstance(ctx, "orders", in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired instance is still there: %v", err)
	}
	if err := s.ExpireInstance(ctx, "orders", in.ID, in.Expires); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ExpireInstance of an absent instance = %v, want ErrNotFound", err)
	}
}

// instanceAt is an instance of service at 10.0.0.n:80, registered at t0
// for ttl.
func instanceAt(service string, n int, ttl time.Duration) store.Instance {
	return store.Instance{Service: service, ID: fmt.Sprintf("10.0.0.%d:80", n), Scheme: "http", Address: fmt.Sprintf("10.0.0.%d", n),
		Port: 80, Weight: 1, TTL: ttl, Registered: t0, Heartbeat: t0, Expires: t0.Add(ttl)}
}

func testAddInstance(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Second)
	for n := range 3 {
		if err := s.AddInstance(ctx, instanceAt("orders", n+1, time.Minute), now, 3, 2); err != nil {
			t.Fatalf("instance %d: %v", n+1, err)
		}
	}
	if err := s.AddInstance(ctx, instanceAt("orders", 4, time.Minute), now, 3, 2); !errors.Is(err, store.ErrTooManyInstances) {
		t.Fatalf("a fourth instance with a bound of 3 = %v, want ErrTooManyInstances", err)
	}
	if _, err := s.GetInstance(ctx, "orders", "10.0.0.4:80"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused instance was stored: %v", err)
	}
	// A renewal of a held instance is not a new one.
	renewed := instanceAt("orders", 2, time.Hour)
	if err := s.AddInstance(ctx, renewed, now, 3, 2); err != nil {
		t.Fatalf("a renewal at the bound: %v", err)
	}
	if got, _ := s.GetInstance(ctx, "orders", renewed.ID); !got.Expires.Equal(renewed.Expires) {
		t.Fatalf("the renewal was not stored: %+v", got)
	}
	// Services: a second is allowed, a third is not.
	if err := s.AddInstance(ctx, instanceAt("billing", 1, time.Minute), now, 3, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.AddInstance(ctx, instanceAt("search", 1, time.Minute), now, 3, 2); !errors.Is(err, store.ErrTooManyServices) {
		t.Fatalf("a third service with a bound of 2 = %v, want ErrTooManyServices", err)
	}
	if err := s.AddInstance(ctx, instanceAt("search", 1, time.Minute), now, 3, 0); err != nil {
		t.Fatalf("no bound on services: %v", err)
	}
	// Expired instances do not count, whether or not they were removed.
	later := t0.Add(2 * time.Minute) // orders' 1 and 3 expired; 2 was renewed
	if err := s.AddInstance(ctx, instanceAt("orders", 5, 10*time.Minute), later, 2, 0); err != nil {
		t.Fatalf("with two of three expired: %v", err)
	}
	if err := s.AddInstance(ctx, instanceAt("orders", 6, 10*time.Minute), later, 2, 0); !errors.Is(err, store.ErrTooManyInstances) {
		t.Fatalf("past the bound again = %v", err)
	}
	// An expired instance not yet removed is not renewed past the bound:
	// it is a new one.
	if err := s.AddInstance(ctx, instanceAt("orders", 1, 10*time.Minute), later, 2, 0); !errors.Is(err, store.ErrTooManyInstances) {
		t.Fatalf("an expired instance registered again past the bound = %v", err)
	}
}

// Two gateways registering at once cannot together pass the bounds.
func testSharedAddInstance(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	now := t0.Add(time.Second)
	for round := range 5 {
		service := fmt.Sprintf("svc%d", round)
		results := make([]error, 40)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range results {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				<-start
				results[i] = s.AddInstance(ctx, instanceAt(service, i+1, time.Minute), now, 5, 0)
			})
		}
		close(start)
		wg.Wait()
		added := 0
		for i, err := range results {
			switch {
			case err == nil:
				added++
			case errors.Is(err, store.ErrTooManyInstances):
			default:
				t.Fatalf("round %d, registration %d: %v", round, i, err)
			}
		}
		held, err := a.ListInstances(ctx, service)
		if err != nil {
			t.Fatal(err)
		}
		if added != 5 || len(held) != 5 {
			t.Fatalf("round %d: %d registrations accepted and %d instances held with a bound of 5", round, added, len(held))
		}
	}
}

func testAddQuotaCounts(t *testing.T, s store.Store) {
	ctx := context.Background()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	next := day.AddDate(0, 0, 1)
	q := func(key string, start time.Time, n int64) store.QuotaCounter {
		return store.QuotaCounter{API: "orders", Operation: "create", Name: "daily", KeySpec: "consumer", Key: key, Start: start, Count: n}
	}
	check := func(what string, got []store.QuotaCounter, err error, want ...store.QuotaCounter) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d counters returned, want %d", what, len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Key != w.Key || !g.Start.Equal(w.Start) || g.Count != w.Count || g.API != w.API || g.Name != w.Name {
				t.Fatalf("%s: counter %d = %+v, want %+v", what, i, g, w)
			}
		}
	}
	// New keys, returned in the callers' order (not the store's).
	got, err := s.AddQuotaCounts(ctx, []store.QuotaCounter{q("zeta", day, 3), q("acme", day, 2)})
	check("first addition", got, err, q("zeta", day, 3), q("acme", day, 2))
	got, err = s.AddQuotaCounts(ctx, []store.QuotaCounter{q("acme", day, 5), q("zeta", day, 1)})
	check("second addition", got, err, q("acme", day, 7), q("zeta", day, 4))
	// A later period replaces; an earlier one is not added.
	got, err = s.AddQuotaCounts(ctx, []store.QuotaCounter{q("acme", next, 1)})
	check("a later period", got, err, q("acme", next, 1))
	got, err = s.AddQuotaCounts(ctx, []store.QuotaCounter{q("acme", day, 9)})
	check("an earlier period", got, err, q("acme", next, 1))
	// A negative count is refused, and nothing of the batch is written.
	if _, err := s.AddQuotaCounts(ctx, []store.QuotaCounter{q("zeta", day, 1), q("acme", next, -1)}); err == nil {
		t.Fatal("a negative count was accepted")
	}
	// The quota package's overflow key starts with a NUL byte.
	overflow := "\x00overflow"
	got, err = s.AddQuotaCounts(ctx, []store.QuotaCounter{q(overflow, next, 4)})
	check("the overflow key", got, err, q(overflow, next, 4))
	all, err := s.LoadQuotaCounters(ctx)
	check("load", all, err, q(overflow, next, 4), q("acme", next, 1), q("zeta", day, 4))
	n, err := s.DeleteQuotaCountersBefore(ctx, next)
	if err != nil || n != 1 {
		t.Fatalf("DeleteQuotaCountersBefore = %d, %v; want 1 (zeta's day)", n, err)
	}
	all, err = s.LoadQuotaCounters(ctx)
	check("load after deleting", all, err, q(overflow, next, 4), q("acme", next, 1))
}

func testSharedAudit(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	const each = 25
	var wg sync.WaitGroup
	for g, s := range []store.Store{a, b} {
		for w := range 2 {
			wg.Go(func() {
				for i := range each {
					if _, err := s.AppendAudit(ctx, store.AuditRecord{Actor: fmt.Sprintf("gw%d-w%d", g, w), Action: "test", Target: fmt.Sprint(i), Outcome: store.OutcomeSuccess}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	recs, err := b.ListAudit(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4*each {
		t.Fatalf("%d records, want %d", len(recs), 4*each)
	}
	prev := ""
	for i, r := range recs {
		if r.Seq != int64(i+1) || r.PrevHash != prev || r.Hash != store.AuditHash(r) {
			t.Fatalf("the chain forks or breaks at record %d: %+v (previous hash %q)", i+1, r, prev)
		}
		prev = r.Hash
	}
}

func testSharedQuota(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	q := func(key string, n int64) store.QuotaCounter {
		return store.QuotaCounter{API: "orders", Name: "daily", KeySpec: "consumer", Key: key, Start: day, Count: n}
	}
	const workers, calls = 4, 25
	var wg sync.WaitGroup
	for g, s := range []store.Store{a, b} {
		for w := range workers {
			wg.Go(func() {
				for i := range calls {
					// Two keys in opposite orders from the two
					// gateways: a store that wrote them in the callers'
					// order could deadlock.
					batch := []store.QuotaCounter{q("acme", 1), q("globex", 1)}
					if (g+w+i)%2 == 1 {
						batch[0], batch[1] = batch[1], batch[0]
					}
					if _, err := s.AddQuotaCounts(ctx, batch); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	all, err := a.LoadQuotaCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Count != 2*workers*calls || all[1].Count != 2*workers*calls {
		t.Fatalf("totals %+v, want %d for each key", all, 2*workers*calls)
	}
}

func testSharedKeysRevision(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	before, err := b.KeysRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateConsumer(ctx, store.Consumer{Name: "acme", Created: t0, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	if err := a.PutKey(ctx, store.Key{Consumer: "acme", Slot: store.SlotPrimary, Hash: hash("k1"), Created: t0}); err != nil {
		t.Fatal(err)
	}
	after, err := b.KeysRevision(ctx)
	if err != nil || after == before {
		t.Fatalf("the other gateway's revision %d -> %d (%v): a key put through one must change it for all", before, after, err)
	}
	keys, err := b.ListKeys(ctx, "acme")
	if err != nil || len(keys) != 1 || keys[0].Hash != hash("k1") {
		t.Fatalf("the other gateway lists %+v, %v", keys, err)
	}
}

func testSharedExpiry(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	for round := range 10 {
		in := store.Instance{Service: "orders", ID: fmt.Sprintf("10.0.0.%d:80", round+1), Scheme: "http", Address: fmt.Sprintf("10.0.0.%d", round+1), Port: 80, Weight: 1,
			TTL: time.Second, Registered: t0, Heartbeat: t0, Expires: t0.Add(time.Second)}
		if err := a.PutInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, s := range []store.Store{a, b} {
			wg.Go(func() { errs[i] = s.ExpireInstance(ctx, in.Service, in.ID, in.Expires.Add(time.Second)) })
		}
		wg.Wait()
		ok, gone := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrNotFound):
				gone++
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ok != 1 || gone != 1 {
			t.Fatalf("round %d: %d gateways expired the instance and %d found it gone, want 1 and 1", round, ok, gone)
		}
	}
}

func testSharedCreate(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	for round := range 10 {
		name := fmt.Sprintf("c%d", round)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, s := range []store.Store{a, b} {
			wg.Go(func() { errs[i] = s.CreateConsumer(ctx, store.Consumer{Name: name, Created: t0, Updated: t0}) })
		}
		wg.Wait()
		created, conflict := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				created++
			case errors.Is(err, store.ErrConflict):
				conflict++
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if created != 1 || conflict != 1 {
			t.Fatalf("round %d: %d created and %d conflicts, want 1 and 1", round, created, conflict)
		}
	}
}

func publishedKIDs(t *testing.T, s store.Store, now time.Time) []string {
	t.Helper()
	keys, err := s.ListPublishedKeys(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.KID)
	}
	return kids
}

func testPublishedKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	if kids := publishedKIDs(t, s, t0); len(kids) != 0 {
		t.Fatalf("an empty store lists %v", kids)
	}
	jwk := []byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"b","alg":"EdDSA","use":"sig"}`)
	keys := []store.PublishedKey{
		{KID: "b", Alg: "EdDSA", JWK: jwk, Activates: t0, Expires: t0.Add(time.Hour)},
		{KID: "a", Alg: "ES256", JWK: []byte(`{"kid":"a"}`), Activates: t0.Add(time.Minute), Expires: t0.Add(2 * time.Hour)},
		{KID: "c", Alg: "ES256", JWK: []byte(`{"kid":"c"}`), Activates: t0, Expires: t0.Add(10 * time.Minute)},
	}
	if err := s.PutPublishedKeys(ctx, keys); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListPublishedKeys(ctx, t0)
	if err != nil || len(got) != 3 {
		t.Fatalf("listed %+v, %v", got, err)
	}
	if got[0].KID != "a" || got[1].KID != "b" || got[2].KID != "c" {
		t.Fatalf("not ordered by kid: %v", publishedKIDs(t, s, t0))
	}
	b := got[1]
	if b.Alg != "EdDSA" || string(b.JWK) != string(jwk) || !b.Activates.Equal(t0) || !b.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("key b came back as %+v", b)
	}
	// A key is listed until it expires, not at its expiry.
	if kids := publishedKIDs(t, s, t0.Add(10*time.Minute)); !reflect.DeepEqual(kids, []string{"a", "b"}) {
		t.Fatalf("at c's expiry: %v", kids)
	}
	// An update moves an expiry later, never earlier.
	if err := s.PutPublishedKeys(ctx, []store.PublishedKey{
		{KID: "b", Alg: "EdDSA", JWK: jwk, Activates: t0, Expires: t0.Add(3 * time.Hour)},
		{KID: "a", Alg: "ES256", JWK: []byte(`{"kid":"a"}`), Activates: t0.Add(time.Minute), Expires: t0.Add(time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	if kids := publishedKIDs(t, s, t0.Add(150*time.Minute)); !reflect.DeepEqual(kids, []string{"b"}) {
		t.Fatalf("after the update, at t0+2h30: %v (b moved to t0+3h, a kept t0+2h)", kids)
	}
	if kids := publishedKIDs(t, s, t0.Add(90*time.Minute)); !reflect.DeepEqual(kids, []string{"a", "b"}) {
		t.Fatalf("after the update, at t0+1h30: %v (a must keep its later expiry)", kids)
	}
	if err := s.DeletePublishedKeys(ctx, []string{"a", "unknown"}); err != nil {
		t.Fatal(err)
	}
	if kids := publishedKIDs(t, s, t0); !reflect.DeepEqual(kids, []string{"b", "c"}) {
		t.Fatalf("after deleting a: %v", kids)
	}
	n, err := s.DeleteExpiredPublishedKeys(ctx, t0.Add(10*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("deleting the expired removed %d (%v), want 1 (c)", n, err)
	}
	if kids := publishedKIDs(t, s, time.Time{}); !reflect.DeepEqual(kids, []string{"b"}) {
		t.Fatalf("after the sweep, every row: %v", kids)
	}
	if err := s.PutPublishedKeys(ctx, nil); err != nil {
		t.Fatalf("an empty batch: %v", err)
	}
	if err := s.DeletePublishedKeys(ctx, nil); err != nil {
		t.Fatalf("an empty deletion: %v", err)
	}
}

func testSharedPublishedKeys(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	if err := a.PutPublishedKeys(ctx, []store.PublishedKey{{KID: "ka", Alg: "ES256", JWK: []byte(`{}`), Activates: t0, Expires: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutPublishedKeys(ctx, []store.PublishedKey{{KID: "kb", Alg: "EdDSA", JWK: []byte(`{}`), Activates: t0, Expires: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]store.Store{"a": a, "b": b} {
		if kids := publishedKIDs(t, s, t0); !reflect.DeepEqual(kids, []string{"ka", "kb"}) {
			t.Fatalf("gateway %s lists %v, want both gateways' keys", name, kids)
		}
	}
	// Both gateways publish one key (a shared key directory) at once: the
	// later expiry wins whatever the order.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			exp := t0.Add(time.Duration(i+1) * time.Minute)
			if err := s.PutPublishedKeys(ctx, []store.PublishedKey{{KID: "shared", Alg: "ES256", JWK: []byte(`{}`), Activates: t0, Expires: exp}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	keys, err := b.ListPublishedKeys(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.KID == "shared" && !k.Expires.Equal(t0.Add(20*time.Minute)) {
			t.Fatalf("the shared key expires at %v, want the latest, %v", k.Expires, t0.Add(20*time.Minute))
		}
	}
}

func testDashboardSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.GetDashboardSession(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown session: %v", err)
	}
	d := store.DashboardSession{Key: "k1", Scope: "s1", User: "ada@example.com", Name: "Ada", Role: 2, CSRF: "tok", Created: t0, LastSeen: t0}
	if err := s.PutDashboardSession(ctx, d, 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDashboardSession(ctx, "k1")
	if err != nil || !reflect.DeepEqual(got, d) {
		t.Fatalf("got %+v, %v; want %+v", got, err, d)
	}
	if err := s.TouchDashboardSession(ctx, "k1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A touch never moves LastSeen back (two gateways touching out of order).
	if err := s.TouchDashboardSession(ctx, "k1", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetDashboardSession(ctx, "k1"); !got.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Fatalf("last seen %v, want %v", got.LastSeen, t0.Add(time.Minute))
	}
	if err := s.TouchDashboardSession(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("touching an unknown session: %v", err)
	}
	// The bound drops the least recently seen.
	for i, seen := range []time.Duration{3 * time.Minute, 2 * time.Minute} {
		k := fmt.Sprintf("k%d", i+2)
		if err := s.PutDashboardSession(ctx, store.DashboardSession{Key: k, Scope: "s1", User: k, CSRF: "t", Created: t0, LastSeen: t0.Add(seen)}, 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GetDashboardSession(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("past the bound of 2, the least recently seen session stays: %v", err)
	}
	for _, k := range []string{"k2", "k3"} {
		if _, err := s.GetDashboardSession(ctx, k); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	// Idle and absolute timeouts.
	if err := s.PutDashboardSession(ctx, store.DashboardSession{Key: "old", Scope: "s1", User: "u", CSRF: "t", Created: t0.Add(-time.Hour), LastSeen: t0.Add(10 * time.Minute)}, 0); err != nil {
		t.Fatal(err)
	}
	// Another scope's idle session is left to its own dashboards.
	if err := s.PutDashboardSession(ctx, store.DashboardSession{Key: "other", Scope: "s2", User: "u", CSRF: "t", Created: t0, LastSeen: t0}, 0); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteIdleDashboardSessions(ctx, "s1", t0.Add(150*time.Second), t0.Add(-time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("deleted %d idle sessions (%v), want 2: k3 (idle) and old (past its absolute timeout)", n, err)
	}
	if got, err := s.GetDashboardSession(ctx, "other"); err != nil || got.Scope != "s2" {
		t.Fatalf("the idle sweep of s1 touched a session of s2: %+v, %v", got, err)
	}
	// A change of settings ends the other scopes' sessions.
	n, err = s.DeleteDashboardSessionsOutside(ctx, "s1")
	if err != nil || n != 1 {
		t.Fatalf("deleted %d sessions outside s1 (%v), want 1", n, err)
	}
	if _, err := s.GetDashboardSession(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a session of s2 stayed: %v", err)
	}
	if _, err := s.GetDashboardSession(ctx, "k2"); err != nil {
		t.Fatalf("k2 (seen at +3m) went: %v", err)
	}
	if err := s.DeleteDashboardSession(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDashboardSession(ctx, "k2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}

func testDashboardLogins(t *testing.T, s store.Store) {
	ctx := context.Background()
	add := func(key, peer string, created time.Time) bool {
		t.Helper()
		ok, err := s.AddDashboardLogin(ctx, store.DashboardLogin{Key: key, Verifier: "v-" + key, Nonce: "n-" + key, ReturnTo: "/ui/", Peer: peer, Created: created}, t0.Add(-10*time.Minute), 4, 2)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !add("s1", "10.0.0.1", t0) || !add("s2", "10.0.0.1", t0.Add(time.Second)) {
		t.Fatal("the first two sign-ins of a peer were refused")
	}
	if add("s3", "10.0.0.1", t0.Add(2*time.Second)) {
		t.Fatal("a third sign-in of a peer allowed two was accepted")
	}
	if !add("s4", "10.0.0.2", t0.Add(3*time.Second)) || !add("s5", "10.0.0.3", t0.Add(4*time.Second)) {
		t.Fatal("other peers' sign-ins were refused")
	}
	// The table holds 4: a fifth makes room by dropping the oldest (s1).
	if !add("s6", "10.0.0.4", t0.Add(5*time.Second)) {
		t.Fatal("a sign-in was refused when the table was full")
	}
	if _, err := s.TakeDashboardLogin(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the oldest sign-in stayed past the bound: %v", err)
	}
	l, err := s.TakeDashboardLogin(ctx, "s2")
	if err != nil || l.Verifier != "v-s2" || l.Nonce != "n-s2" || l.ReturnTo != "/ui/" || l.Peer != "10.0.0.1" || !l.Created.Equal(t0.Add(time.Second)) {
		t.Fatalf("took %+v, %v", l, err)
	}
	if _, err := s.TakeDashboardLogin(ctx, "s2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a sign-in taken twice: %v", err)
	}
	// Sign-ins created before expiredBefore go at the next addition.
	ok, err := s.AddDashboardLogin(ctx, store.DashboardLogin{Key: "late", Peer: "10.0.0.9", Created: t0.Add(time.Hour)}, t0.Add(30*time.Minute), 4, 2)
	if err != nil || !ok {
		t.Fatalf("late sign-in: %v %v", ok, err)
	}
	for _, k := range []string{"s4", "s5", "s6"} {
		if _, err := s.TakeDashboardLogin(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired sign-in %s stayed: %v", k, err)
		}
	}
	// The sweep of sign-ins nobody finished.
	n, err := s.DeleteExpiredDashboardLogins(ctx, t0.Add(time.Hour+time.Second))
	if err != nil || n != 1 {
		t.Fatalf("swept %d sign-ins (%v), want 1 (late)", n, err)
	}
}

func testSharedDashboardLogin(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	for i := range 10 {
		key := fmt.Sprintf("state-%d", i)
		if ok, err := a.AddDashboardLogin(ctx, store.DashboardLogin{Key: key, Verifier: "v", Peer: "p", Created: t0}, t0.Add(-time.Hour), 100, 100); err != nil || !ok {
			t.Fatalf("add: %v %v", ok, err)
		}
		var wg sync.WaitGroup
		var got [2]error
		for j, s := range []store.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, got[j] = s.TakeDashboardLogin(ctx, key)
			}()
		}
		wg.Wait()
		if (got[0] == nil) == (got[1] == nil) {
			t.Fatalf("%s taken by both or neither: %v, %v", key, got[0], got[1])
		}
		for _, err := range got {
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		}
	}
	if err := a.PutDashboardSession(ctx, store.DashboardSession{Key: "sess", Scope: "s", User: "u", CSRF: "c", Created: t0, LastSeen: t0}, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetDashboardSession(ctx, "sess"); err != nil || got.User != "u" {
		t.Fatalf("a session made through one gateway, read through the other: %+v, %v", got, err)
	}
}
