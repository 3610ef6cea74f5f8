package storetest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// checkHours fails unless got holds want's rows, in want's order, with
// their Data byte for byte (nil and empty alike: both are no bytes).
func checkHours(t *testing.T, what string, got []store.UpstreamHour, err error, want ...store.UpstreamHour) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d: %s", what, len(got), len(want), hourKeys(got))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Process != w.Process || g.API != w.API || g.Operation != w.Operation || g.Hour != w.Hour ||
			!bytes.Equal(g.Data, w.Data) || !g.Updated.Equal(w.Updated) {
			t.Fatalf("%s: row %d = %+v, want %+v (rows %s)", what, i, g, w, hourKeys(got))
		}
	}
}

// hourKeys names each row's key, for a failure.
func hourKeys(rows []store.UpstreamHour) string {
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = fmt.Sprintf("%s/%s/%s/%d", r.Process, r.API, r.Operation, r.Hour)
	}
	return "[" + strings.Join(keys, " ") + "]"
}

func testUpstreamHours(t *testing.T, s store.Store) {
	ctx := context.Background()
	hour := func(process, api, op string, h int64, data []byte) store.UpstreamHour {
		return store.UpstreamHour{Process: process, API: api, Operation: op, Hour: h, Data: data, Updated: t0.Add(time.Duration(h) * time.Second)}
	}
	got, err := s.ListUpstreamHours(ctx, 0)
	checkHours(t, "an empty store", got, err)

	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	var (
		// Data as observe may encode it: empty, NUL bytes, every byte.
		a1 = hour("p1", "orders", "create", 100, []byte{})
		a2 = hour("p1", "orders", "create", 101, []byte{0x00})
		a3 = hour("p1", "orders", "create", 102, every)
		// Byte order: "B" sorts before "a", and both before "create".
		b1 = hour("p1", "orders", "B", 102, []byte("\x00\x01\x00"))
		b2 = hour("p1", "orders", "a", 100, []byte("list"))
		c1 = hour("p1", "payments", "charge", 99, []byte("charge"))
		d1 = hour("p2", "orders", "create", 101, []byte("p2"))
		// No Data at all is stored as empty.
		d2 = hour("p2", "orders", "create", 103, nil)
	)
	if err := s.PutUpstreamHours(ctx, []store.UpstreamHour{d2, c1, a3, b2, a1, d1, b1, a2}); err != nil {
		t.Fatal(err)
	}
	got, err = s.ListUpstreamHours(ctx, 0)
	checkHours(t, "every row", got, err, b1, b2, a1, a2, a3, c1, d1, d2)
	got, err = s.ListUpstreamHours(ctx, 101)
	checkHours(t, "since hour 101", got, err, b1, a2, a3, d1, d2)
	got, err = s.ListUpstreamHours(ctx, 104)
	checkHours(t, "since an hour past every row", got, err)

	// A row with the same key replaces the stored one; within one batch,
	// the later of two rows with one key is kept.
	a2.Data, a2.Updated = []byte("replaced\x00"), t0.Add(time.Hour)
	first := d1
	first.Data = []byte("first")
	d1.Data, d1.Updated = []byte{}, t0.Add(2*time.Hour)
	if err := s.PutUpstreamHours(ctx, []store.UpstreamHour{first, a2, d1}); err != nil {
		t.Fatal(err)
	}
	got, err = s.ListUpstreamHours(ctx, 0)
	checkHours(t, "after replacing", got, err, b1, b2, a1, a2, a3, c1, d1, d2)

	// An empty batch changes nothing.
	if err := s.PutUpstreamHours(ctx, nil); err != nil {
		t.Fatalf("a nil batch: %v", err)
	}
	if err := s.PutUpstreamHours(ctx, []store.UpstreamHour{}); err != nil {
		t.Fatalf("an empty batch: %v", err)
	}
	got, err = s.ListUpstreamHours(ctx, 0)
	checkHours(t, "after empty batches", got, err, b1, b2, a1, a2, a3, c1, d1, d2)

	n, err := s.DeleteUpstreamHoursBefore(ctx, 101)
	if err != nil || n != 3 {
		t.Fatalf("DeleteUpstreamHoursBefore(101) = %d, %v; want 3 (hours 99 and 100)", n, err)
	}
	got, err = s.ListUpstreamHours(ctx, 0)
	checkHours(t, "after deleting before 101", got, err, b1, a2, a3, d1, d2)
	if n, err := s.DeleteUpstreamHoursBefore(ctx, 101); err != nil || n != 0 {
		t.Fatalf("deleting again = %d, %v; want 0", n, err)
	}
}

func testSharedUpstreamHours(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	pa := store.UpstreamHour{Process: "pa", API: "orders", Operation: "create", Hour: 10, Data: []byte("from a\x00"), Updated: t0}
	pb := store.UpstreamHour{Process: "pb", API: "orders", Operation: "create", Hour: 10, Data: []byte("from b\x00"), Updated: t0}
	if err := a.PutUpstreamHours(ctx, []store.UpstreamHour{pa}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutUpstreamHours(ctx, []store.UpstreamHour{pb}); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]store.Store{"a": a, "b": b} {
		got, err := s.ListUpstreamHours(ctx, 0)
		checkHours(t, "gateway "+name+" lists both processes' rows", got, err, pa, pb)
	}

	// Both gateways write overlapping rows at once, in opposite orders: a
	// store that wrote them in the callers' order could deadlock.
	type key struct {
		op   string
		hour int64
	}
	var keys []key
	for _, op := range []string{"create", "list", "delete"} {
		for h := range int64(3) {
			keys = append(keys, key{op, 20 + h})
		}
	}
	const each = 20
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g, s := range []store.Store{a, b} {
		for i := range each {
			wg.Go(func() {
				batch := make([]store.UpstreamHour, len(keys))
				for j, k := range keys {
					if (g+i)%2 == 1 {
						k = keys[len(keys)-1-j]
					}
					batch[j] = store.UpstreamHour{Process: "shared", API: "orders", Operation: k.op, Hour: k.hour,
						Data: fmt.Appendf(nil, "gw%d-%d %s/%d", g, i, k.op, k.hour), Updated: t0.Add(time.Duration(i) * time.Second)}
				}
				<-start
				if err := s.PutUpstreamHours(ctx, batch); err != nil {
					t.Error(err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	got, err := b.ListUpstreamHours(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keys) {
		t.Fatalf("%d rows after the concurrent puts, want one per key (%d): %s", len(got), len(keys), hourKeys(got))
	}
	seen := map[key]bool{}
	for _, r := range got {
		k := key{r.Operation, r.Hour}
		if r.Process != "shared" || seen[k] {
			t.Fatalf("row %s/%s/%s/%d: not one of the keys written, or listed twice", r.Process, r.API, r.Operation, r.Hour)
		}
		seen[k] = true
		if suffix := fmt.Sprintf(" %s/%d", k.op, k.hour); !bytes.HasSuffix(r.Data, []byte(suffix)) {
			t.Fatalf("row %s/%d holds %q, another row's data", k.op, k.hour, r.Data)
		}
	}
}
