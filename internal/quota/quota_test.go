package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPeriodBounds(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	at := func(s string, loc *time.Location) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name       string
		p          Period
		t          time.Time
		loc        *time.Location
		start, end string
	}{
		{"hour", Hour, at("2026-03-10 12:34:56", time.UTC), time.UTC, "2026-03-10T12:00:00Z", "2026-03-10T13:00:00Z"},
		{"half-hour zone", Hour, at("2026-03-10 12:34:56", time.UTC), kolkata, "2026-03-10T18:00:00+05:30", "2026-03-10T19:00:00+05:30"},
		{"day in a zone", Day, at("2026-03-10 23:30:00", time.UTC), paris, "2026-03-11T00:00:00+01:00", "2026-03-12T00:00:00+01:00"},
		{"day of 23 hours (DST starts)", Day, at("2026-03-29 12:00:00", paris), paris, "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"},
		{"week starts on Monday", Week, at("2026-03-15 10:00:00", time.UTC), time.UTC, "2026-03-09T00:00:00Z", "2026-03-16T00:00:00Z"},
		{"week on a Monday", Week, at("2026-03-16 00:00:00", time.UTC), time.UTC, "2026-03-16T00:00:00Z", "2026-03-23T00:00:00Z"},
		{"month", Month, at("2026-12-31 23:59:59", time.UTC), time.UTC, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, e := tc.p.Bounds(tc.t, tc.loc)
			if s.Format(time.RFC3339) != tc.start || e.Format(time.RFC3339) != tc.end {
				t.Fatalf("[%s, %s), want [%s, %s)", s.Format(time.RFC3339), e.Format(time.RFC3339), tc.start, tc.end)
			}
		})
	}
}

func TestCounter_LimitAndRenewal(t *testing.T) {
	c := newCounter(Params{Limit: 2, Period: Day, Location: time.UTC, MaxKeys: 10})
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for i, want := range []bool{true, true, false} {
		if d := c.allow("a", t0); d.Allowed != want {
			t.Fatalf("request %d: allowed %v", i, d.Allowed)
		}
	}
	if d := c.allow("b", t0); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("another key: %+v", d)
	}
	d := c.allow("a", t0.Add(12*time.Hour))
	if !d.Allowed || d.Remaining != 1 || !d.Renews.Equal(time.Date(2026, 3, 12, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("next day: %+v", d)
	}
}

// Threat: many distinct keys must not grow the quota without bound, nor
// escape counting.
func TestCounter_MaxKeysOverflowIsCounted(t *testing.T) {
	c := newCounter(Params{Limit: 1, Period: Day, Location: time.UTC, MaxKeys: 2})
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	c.allow("a", t0)
	c.allow("b", t0)
	if d := c.allow("c", t0); !d.Allowed {
		t.Fatal("the first overflow key was refused")
	}
	if d := c.allow("d", t0); d.Allowed {
		t.Fatal("overflow keys are not counted together")
	}
	if c.Len() != 3 {
		t.Fatalf("%d entries", c.Len())
	}
	// The next day, old entries make room.
	if d := c.allow("e", t0.Add(24*time.Hour)); !d.Allowed || c.entries["e"] == nil {
		t.Fatal("expired entries were not dropped")
	}
}

func TestRegistry_CountsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	id := ID{API: "orders", Name: "daily", Key: "consumer"}
	p := Params{Limit: 3, Period: Day, Location: time.UTC, MaxKeys: 100}

	r1 := NewRegistry(slog.New(slog.DiscardHandler), clock)
	if _, err := r1.Open(dir); err != nil {
		t.Fatal(err)
	}
	c1 := r1.Get(id, p)
	c1.Allow(context.Background(), "partner", now)
	c1.Allow(context.Background(), "partner", now)
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := NewRegistry(slog.New(slog.DiscardHandler), clock)
	if _, err := r2.Open(dir); err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	c2 := r2.Get(id, p)
	if d, _ := c2.Allow(context.Background(), "partner", now); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after restart: %+v, want the third and last request", d)
	}
	if d, _ := c2.Allow(context.Background(), "partner", now); d.Allowed {
		t.Fatal("the quota was reset by the restart")
	}
	// Nothing but the file is left in the directory (the temp file was renamed).
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != FileName {
		t.Fatalf("directory holds %v", entries)
	}
}

func TestFileStore_CorruptFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte("{not json"), 0o600)
	r := NewRegistry(slog.New(slog.DiscardHandler), nil)
	if _, err := r.Open(dir); err == nil || !strings.Contains(err.Error(), FileName) {
		t.Fatalf("err %v", err)
	}
}

// Unclaimed records (a quota briefly absent from the configuration) are
// saved again, not erased.
func TestRegistry_KeepsUnclaimedRecords(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	fs, _ := NewFileStore(dir)
	fs.Save([]Record{{API: "gone", Name: "q", KeySpec: "subject", Key: "k", Start: now.Add(-time.Hour).Unix(), Count: 5}})
	r := NewRegistry(slog.New(slog.DiscardHandler), clock)
	r.Open(dir)
	c := r.Get(ID{API: "orders", Name: "daily", Key: "subject"}, Params{Limit: 3, Period: Day, Location: time.UTC, MaxKeys: 10})
	c.Allow(context.Background(), "x", now)
	r.Close()
	recs, _ := fs.Load()
	if len(recs) != 2 {
		t.Fatalf("records %+v", recs)
	}
}

// A quota dropped from the configuration, or made by a compile that was
// then refused, gives its counts back: the next quota with its ID counts
// on from them, and the store keeps them meanwhile.
func TestRegistry_ReleasedCountsAreClaimedAgain(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	id := ID{API: "orders", Name: "daily", Key: "consumer"}
	p := Params{Limit: 3, Period: Day, Location: time.UTC, MaxKeys: 100}
	fs, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	fs.Save([]Record{{API: "orders", Name: "daily", KeySpec: "consumer", Key: "partner", Start: now.Add(-12 * time.Hour).Unix(), Count: 1}})
	r := NewRegistry(slog.New(slog.DiscardHandler), clock)
	if _, err := r.Open(dir); err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// A compile that is refused claims the stored count, then gives it back.
	if c, _ := r.Prepare(id, p); c.entries["partner"] == nil {
		t.Fatal("the stored count was not restored")
	}
	r.Retain(nil)
	c := r.Get(id, p)
	if d, _ := c.Allow(context.Background(), "partner", now); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after a refused compile: %+v, want the second of 3", d)
	}

	// A configuration without the quota, then one with it again.
	r.Retain(map[ID]bool{})
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	recs, _ := fs.Load()
	if len(recs) != 1 || recs[0].Count != 2 {
		t.Fatalf("saved while the quota is absent: %+v, want the count of 2", recs)
	}
	c = r.Get(id, p)
	if d, _ := c.Allow(context.Background(), "partner", now); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("the quota back: %+v, want the third and last", d)
	}
	if d, _ := c.Allow(context.Background(), "partner", now); d.Allowed {
		t.Fatal("the quota's counts were lost while it was absent")
	}

	// Counts older than any period are let go.
	r.Retain(nil)
	now = now.Add(maxPeriod + 24*time.Hour)
	r.Retain(nil)
	if len(r.pending) != 0 {
		t.Fatalf("pending %+v, want none past the longest period", r.pending)
	}
}

// blockingStore holds its first Save until release is closed.
type blockingStore struct {
	mu      sync.Mutex
	saved   [][]Record
	saving  chan struct{}
	release chan struct{}
	fail    bool
}

func (s *blockingStore) Load() ([]Record, error) { return nil, nil }

func (s *blockingStore) Save(recs []Record) error {
	s.mu.Lock()
	first := len(s.saved) == 0
	s.saved = append(s.saved, recs)
	fail := s.fail
	s.mu.Unlock()
	if first {
		close(s.saving)
		<-s.release
	}
	if fail {
		return errors.New("disk full")
	}
	return nil
}

// A request counted while the counters are being saved is saved by the
// next flush (the last one, at Close): it was marked saved with the rest
// once Save returned, and a clean stop lost it. A failed save leaves
// everything to save again.
func TestRegistry_CountDuringSaveIsNotLost(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	id := ID{API: "orders", Name: "daily", Key: "consumer"}
	p := Params{Limit: 10, Period: Day, Location: time.UTC, MaxKeys: 100}
	for _, fail := range []bool{false, true} {
		st := &blockingStore{saving: make(chan struct{}), release: make(chan struct{}), fail: fail}
		r := NewRegistry(slog.New(slog.DiscardHandler), func() time.Time { return now })
		if err := r.OpenStore(st); err != nil {
			t.Fatal(err)
		}
		c := r.Get(id, p)
		c.Allow(context.Background(), "partner", now)
		done := make(chan error, 1)
		go func() { done <- r.Flush() }()
		<-st.saving
		c.Allow(context.Background(), "partner", now) // counted during Save
		close(st.release)
		if err := <-done; (err != nil) != fail {
			t.Fatalf("fail=%v: Flush: %v", fail, err)
		}
		st.fail = false
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		st.mu.Lock()
		last := st.saved[len(st.saved)-1]
		n := len(st.saved)
		st.mu.Unlock()
		if n != 2 || len(last) != 1 || last[0].Count != 2 {
			t.Fatalf("fail=%v: %d saves, the last %+v; want a second save with the count of 2", fail, n, last)
		}
	}
}

// A key longer than maxKeyLen (a header value can be 64 KB) is kept and
// saved as its hash: distinct keys stay distinct, and memory and the
// store hold a bounded key.
func TestCounter_LongKeysAreKeptAsTheirHash(t *testing.T) {
	c := newCounter(Params{Limit: 1, Period: Day, Location: time.UTC, MaxKeys: 10})
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	long := strings.Repeat("k", 64<<10)
	if d := c.allow(long+"1", t0); !d.Allowed {
		t.Fatal("first long key refused")
	}
	if d := c.allow(long+"2", t0); !d.Allowed {
		t.Fatal("a second long key, differing at its end, was counted with the first")
	}
	if d := c.allow(long+"1", t0); d.Allowed {
		t.Fatal("the first long key was not counted")
	}
	for _, r := range c.appendRecords(nil, ID{API: "a", Name: "q", Key: "header:X-K"}, t0) {
		if len(r.Key) > maxKeyLen+len("sha256:") {
			t.Fatalf("a saved key of %d bytes", len(r.Key))
		}
	}
}

// BenchmarkCounter_NewKeysOnAFullTable is a new key's cost once a quota
// holds max_keys keys of the current period: the table is scanned for
// expired keys once per period, not for every new key (about a
// millisecond each at 100,000 keys).
func BenchmarkCounter_NewKeysOnAFullTable(b *testing.B) {
	const n = 100_000
	c := newCounter(Params{Limit: 10, Period: Day, Location: time.UTC, MaxKeys: n})
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for i := range n {
		c.allow(fmt.Sprintf("k%d", i), t0)
	}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("new%d", i)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c.allow(keys[i%len(keys)], t0)
	}
}
