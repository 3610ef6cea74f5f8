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
