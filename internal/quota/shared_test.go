package quota

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeShared is a SharedStore in memory that applies the period rule of
// SharedStore.Add exactly.
type fakeShared struct {
	mu     sync.Mutex
	totals map[recKey]Record
	loads  int
	adds   [][]Record // the deltas of each successful Add
	calls  int        // Add calls, failed ones too
	fail   error
	pruned []int64
	saves  int
	// entered, when set, is closed by the next Add, which then waits for
	// release before it adds anything.
	entered, release chan struct{}
}

type recKey struct{ API, Operation, Name, KeySpec, Key string }

func keyOfRecord(r Record) recKey { return recKey{r.API, r.Operation, r.Name, r.KeySpec, r.Key} }

func newFake() *fakeShared { return &fakeShared{totals: map[recKey]Record{}} }

func (f *fakeShared) Load() ([]Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	var out []Record
	for _, r := range f.totals {
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeShared) Add(deltas []Record) ([]Record, error) {
	f.mu.Lock()
	entered, release := f.entered, f.release
	f.entered, f.release = nil, nil
	f.mu.Unlock()
	if entered != nil {
		close(entered)
		<-release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		return nil, f.fail
	}
	for _, d := range deltas {
		if d.Count < 0 {
			return nil, errors.New("negative count")
		}
	}
	out := make([]Record, len(deltas))
	for i, d := range deltas {
		k := keyOfRecord(d)
		cur, ok := f.totals[k]
		switch {
		case !ok || cur.Start < d.Start:
			cur = d // a new key, or the period renewed
		case cur.Start == d.Start:
			cur.Count += d.Count
		}
		// cur.Start > d.Start: not added, the later total is returned
		f.totals[k] = cur
		out[i] = cur
	}
	f.adds = append(f.adds, slices.Clone(deltas))
	return out, nil
}

func (f *fakeShared) Prune(before int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruned = append(f.pruned, before)
	for k, r := range f.totals {
		if r.Start < before {
			delete(f.totals, k)
		}
	}
	return nil
}

// Save is what a Store has: the registry must never call it in shared
// mode (the server's adapter implements both).
func (f *fakeShared) Save([]Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saves++
	return nil
}

// blockNext makes the next Add wait: entered is closed once it runs,
// and it goes on when release is closed.
func (f *fakeShared) blockNext() (entered, release chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entered, f.release = make(chan struct{}), make(chan struct{})
	return f.entered, f.release
}

func (f *fakeShared) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// total returns the stored total of key of sharedID.
func (f *fakeShared) total(key string) Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.totals[recKey{sharedID.API, sharedID.Operation, sharedID.Name, sharedID.Key, key}]
}

func (f *fakeShared) lastAdd() []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.adds) == 0 {
		return nil
	}
	return f.adds[len(f.adds)-1]
}

func (f *fakeShared) addCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// testClock is a registry's clock, moved by the test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var (
	sharedID     = ID{API: "orders", Name: "daily", Key: "consumer"}
	sharedParams = Params{Limit: 100, Period: Day, Location: time.UTC, MaxKeys: 100}
	day0         = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	day0Start    = time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC).Unix()
	day1Start    = time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC).Unix()
)

// newShared returns a gateway's registry counting in f. The interval is
// long: the tests sync with Flush.
func newShared(t *testing.T, f *fakeShared, clk *testClock) *Registry {
	t.Helper()
	r := NewRegistry(slog.New(slog.DiscardHandler), clk.now)
	if err := r.OpenShared(f, time.Hour); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustFlush(t *testing.T, r *Registry) {
	t.Helper()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
}

// admit makes up to n requests under key at now and says how many were
// allowed.
func admit(c *Counter, key string, now time.Time, n int) int {
	ok := 0
	for range n {
		if c.allow(key, now).Allowed {
			ok++
		}
	}
	return ok
}

// view returns what the counter holds for key: its period's start, the
// count it decides on, and the part of it the store acknowledged.
func view(c *Counter, key string) (start, count, synced int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil {
		return 0, 0, 0
	}
	return e.start, e.count, e.synced
}

// Two gateways on one store count together: each learns the other's
// counts when it syncs, both refuse once the total reaches the limit, and
// the overrun stays within what one gateway admits in one sync interval.
func TestShared_GatewaysCountTogether(t *testing.T) {
	f := newFake()
	clk := newClock(day0)
	g1, g2 := newShared(t, f, clk), newShared(t, f, clk)
	c1, c2 := g1.Get(sharedID, sharedParams), g2.Get(sharedID, sharedParams)

	admitted := admit(c1, "partner", day0, 30) + admit(c2, "partner", day0, 40)
	mustFlush(t, g1)
	mustFlush(t, g2)
	if got := f.total("partner").Count; got != 70 {
		t.Fatalf("stored total %d, want 70", got)
	}
	if _, n, _ := view(c2, "partner"); n != 70 {
		t.Fatalf("the gateway that synced last holds %d, want both gateways' 70", n)
	}
	// The first learns the second's counts at its next sync of the key.
	admitted += admit(c1, "partner", day0, 1)
	mustFlush(t, g1)
	if _, n, _ := view(c1, "partner"); n != 71 {
		t.Fatalf("the first gateway holds %d after its next sync, want 71", n)
	}

	// Each sync interval, each gateway admits up to perInterval.
	const perInterval = 10
	for range 20 {
		a1 := admit(c1, "partner", day0, perInterval)
		a2 := admit(c2, "partner", day0, perInterval)
		admitted += a1 + a2
		mustFlush(t, g1)
		mustFlush(t, g2)
		if a1+a2 == 0 {
			break
		}
	}
	if c1.allow("partner", day0).Allowed || c2.allow("partner", day0).Allowed {
		t.Fatal("a gateway still admits once the shared total is past the limit")
	}
	if got := f.total("partner").Count; got != int64(admitted) {
		t.Fatalf("stored total %d, admitted %d: counts lost or counted twice", got, admitted)
	}
	if over := admitted - 100; over < 0 || over > perInterval {
		t.Fatalf("admitted %d for a limit of 100: overrun %d, want at most %d (one interval of the other gateway)", admitted, over, perInterval)
	}
}

// A request counted while Add runs is kept on top of the total returned,
// and sent at the next sync; what was sent is not sent again.
func TestShared_CountsDuringAddAreKept(t *testing.T) {
	f := newFake()
	clk := newClock(day0)
	g := newShared(t, f, clk)
	c := g.Get(sharedID, sharedParams)
	admit(c, "partner", day0, 3)
	// Another gateway's counts, which this one has not seen.
	f.Add([]Record{{API: sharedID.API, Name: sharedID.Name, KeySpec: sharedID.Key, Key: "partner", Start: day0Start, Count: 10}})

	entered, release := f.blockNext()
	done := make(chan error, 1)
	go func() { done <- g.Flush() }()
	<-entered
	if n := admit(c, "partner", day0, 2); n != 2 { // counted during Add
		t.Fatalf("admitted %d of 2 during the sync", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, n, synced := view(c, "partner"); n != 15 || synced != 13 {
		t.Fatalf("holds %d (synced %d), want the total 13 and the 2 counted meanwhile", n, synced)
	}
	mustFlush(t, g)
	if last := f.lastAdd(); len(last) != 1 || last[0].Count != 2 {
		t.Fatalf("second sync sent %+v, want the 2 counted during the first", last)
	}
	if got := f.total("partner").Count; got != 15 {
		t.Fatalf("stored total %d, want 15", got)
	}
	if d := c.allow("partner", day0); d.Remaining != 100-16 {
		t.Fatalf("remaining %d, want %d", d.Remaining, 100-16)
	}
}

// A failed Add keeps every count: once the store is back, the total is
// exact, with nothing lost and nothing counted twice.
func TestShared_FailedAddKeepsCounts(t *testing.T) {
	f := newFake()
	clk := newClock(day0)
	g := newShared(t, f, clk)
	c := g.Get(sharedID, sharedParams)
	admit(c, "partner", day0, 5)
	admit(c, "other", day0, 1)
	f.setFail(errors.New("connection refused"))
	if err := g.Flush(); err == nil {
		t.Fatal("Flush hid the store's failure")
	}
	admit(c, "partner", day0, 2)
	if err := g.Flush(); err == nil {
		t.Fatal("Flush hid the store's failure")
	}
	f.setFail(nil)
	mustFlush(t, g)
	if p, o := f.total("partner").Count, f.total("other").Count; p != 7 || o != 1 {
		t.Fatalf("stored %d and %d, want 7 and 1", p, o)
	}
	calls := f.addCalls()
	mustFlush(t, g)
	if f.addCalls() != calls {
		t.Fatal("a sync with nothing new called the store")
	}
	if p := f.total("partner").Count; p != 7 {
		t.Fatalf("stored %d after another sync, want 7", p)
	}
}

// The period renews on one gateway's clock first: the store replaces the
// old period's total, and a gateway whose clock is behind adopts the new
// period (its count of the old one is not added) and counts in it.
func TestShared_PeriodRenewal(t *testing.T) {
	f := newFake()
	clk1, clk2 := newClock(day0), newClock(day0)
	g1, g2 := newShared(t, f, clk1), newShared(t, f, clk2)
	c1, c2 := g1.Get(sharedID, sharedParams), g2.Get(sharedID, sharedParams)
	admit(c1, "partner", day0, 3)
	admit(c2, "partner", day0, 2)
	mustFlush(t, g1)
	mustFlush(t, g2)

	// Gateway 1's clock reaches the next day.
	later := time.Unix(day1Start, 0).Add(time.Hour)
	clk1.set(later)
	admit(c1, "partner", later, 1)
	mustFlush(t, g1)
	if tot := f.total("partner"); tot.Start != day1Start || tot.Count != 1 {
		t.Fatalf("stored %+v, want the new day's 1", tot)
	}

	// Gateway 2, still on the old day, counts in it and syncs.
	admit(c2, "partner", day0, 1)
	mustFlush(t, g2)
	if tot := f.total("partner"); tot.Start != day1Start || tot.Count != 1 {
		t.Fatalf("stored %+v: the old day's count was added to the new one", tot)
	}
	if s, n, _ := view(c2, "partner"); s != day1Start || n != 1 {
		t.Fatalf("gateway 2 holds %d from %d, want the new day's total 1", n, s)
	}
	// Its clock still on the old day, it counts in the new one.
	d := c2.allow("partner", day0)
	if !d.Allowed || d.Remaining != 100-2 || !d.Renews.Equal(time.Unix(day1Start, 0).Add(24*time.Hour)) {
		t.Fatalf("gateway 2 behind: %+v, want the new day's second request", d)
	}
	mustFlush(t, g2)
	if tot := f.total("partner"); tot.Start != day1Start || tot.Count != 2 {
		t.Fatalf("stored %+v, want the new day's 2", tot)
	}

	// A period beyond the next one comes from a clock plainly wrong: it
	// is not adopted, and gateway 1 keeps counting its own day.
	far := time.Unix(day1Start, 0).Add(10 * 24 * time.Hour).Unix()
	f.Add([]Record{{API: sharedID.API, Name: sharedID.Name, KeySpec: sharedID.Key, Key: "partner", Start: far, Count: 50}})
	admit(c1, "partner", later, 1)
	mustFlush(t, g1)
	if s, n, _ := view(c1, "partner"); s != day1Start || n != 2 {
		t.Fatalf("gateway 1 holds %d from %d, want its own day's 2", n, s)
	}
}

// The period renews locally while Add runs: the old period's counts were
// sent, the new period's stay and are sent at the next sync.
func TestShared_PeriodRenewsDuringAdd(t *testing.T) {
	f := newFake()
	clk := newClock(day0)
	g := newShared(t, f, clk)
	c := g.Get(sharedID, sharedParams)
	admit(c, "partner", day0, 2)

	entered, release := f.blockNext()
	done := make(chan error, 1)
	go func() { done <- g.Flush() }()
	<-entered
	later := time.Unix(day1Start, 0).Add(time.Hour)
	clk.set(later)
	admit(c, "partner", later, 3)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if tot := f.total("partner"); tot.Start != day0Start || tot.Count != 2 {
		t.Fatalf("stored %+v, want the old day's 2", tot)
	}
	if s, n, synced := view(c, "partner"); s != day1Start || n != 3 || synced != 0 {
		t.Fatalf("holds %d (synced %d) from %d, want the new day's 3, unsent", n, synced, s)
	}
	mustFlush(t, g)
	if last := f.lastAdd(); len(last) != 1 || last[0].Start != day1Start || last[0].Count != 3 {
		t.Fatalf("second sync sent %+v, want the new day's 3", last)
	}
	if tot := f.total("partner"); tot.Start != day1Start || tot.Count != 3 {
		t.Fatalf("stored %+v, want the new day's 3", tot)
	}
}

// A quota that Retain drops still sends its counts, at the next sync or
// at Close, and one that comes back takes the shared totals.
func TestShared_RetainedCountsAreSentAndClaimed(t *testing.T) {
	t.Run("close sends them", func(t *testing.T) {
		f := newFake()
		g := newShared(t, f, newClock(day0))
		c := g.Get(sharedID, sharedParams)
		admit(c, "partner", day0, 4)
		g.Retain(map[ID]bool{})
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if got := f.total("partner").Count; got != 4 {
			t.Fatalf("stored %d, want the dropped quota's 4", got)
		}
	})
	t.Run("the quota comes back", func(t *testing.T) {
		f := newFake()
		clk := newClock(day0)
		g, other := newShared(t, f, clk), newShared(t, f, clk)
		admit(g.Get(sharedID, sharedParams), "partner", day0, 4)
		g.Retain(nil)
		admit(other.Get(sharedID, sharedParams), "partner", day0, 10)
		mustFlush(t, other)
		mustFlush(t, g)
		if got := f.total("partner").Count; got != 14 {
			t.Fatalf("stored %d, want 14", got)
		}
		c := g.Get(sharedID, sharedParams)
		if d := c.allow("partner", day0); !d.Allowed || d.Remaining != 100-15 {
			t.Fatalf("the quota back: %+v, want the 15th request", d)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if got := f.total("partner").Count; got != 15 {
			t.Fatalf("stored %d, want 15", got)
		}
	})
	t.Run("dropped while its counts are sent", func(t *testing.T) {
		f := newFake()
		g := newShared(t, f, newClock(day0))
		c := g.Get(sharedID, sharedParams)
		admit(c, "partner", day0, 4)
		entered, release := f.blockNext()
		done := make(chan error, 1)
		go func() { done <- g.Flush() }()
		<-entered
		g.Retain(nil)
		admit(c, "partner", day0, 1) // a request of the configuration going away
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		c = g.Get(sharedID, sharedParams)
		if d := c.allow("partner", day0); d.Remaining != 100-6 {
			t.Fatalf("the quota back: remaining %d, want %d", d.Remaining, 100-6)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if got := f.total("partner").Count; got != 6 {
			t.Fatalf("stored %d, want 6: counts lost or sent twice", got)
		}
	})
	t.Run("let go past the longest period", func(t *testing.T) {
		f := newFake()
		clk := newClock(day0)
		g := newShared(t, f, clk)
		admit(g.Get(sharedID, sharedParams), "partner", day0, 1)
		g.Retain(nil)
		mustFlush(t, g)
		clk.set(day0.Add(maxPeriod + 24*time.Hour))
		g.Retain(nil)
		if len(g.released) != 0 {
			t.Fatalf("released %v, want none past the longest period", g.released)
		}
	})
}

// OpenShared keeps the first store only; the totals it loads are where
// counting starts; Close sends the last counts; Save is never called.
func TestShared_OpenAndClose(t *testing.T) {
	f := newFake()
	f.Add([]Record{{API: sharedID.API, Name: sharedID.Name, KeySpec: sharedID.Key, Key: "partner", Start: day0Start, Count: 50}})
	clk := newClock(day0)
	g := newShared(t, f, clk)
	if err := g.OpenShared(newFake(), time.Hour); !errors.Is(err, ErrStoreOpen) {
		t.Fatalf("second OpenShared: %v, want ErrStoreOpen", err)
	}
	dir := t.TempDir()
	fs, _ := NewFileStore(dir)
	if err := g.OpenStore(fs); !errors.Is(err, ErrStoreOpen) {
		t.Fatalf("OpenStore after OpenShared: %v, want ErrStoreOpen", err)
	}
	// The compile's Open of the data directory uses the shared store.
	if ok, err := g.Open(dir); !ok || err != nil {
		t.Fatalf("Open: %v %v, want the shared store in use", ok, err)
	}
	c := g.Get(sharedID, sharedParams)
	if d := c.allow("partner", day0); !d.Allowed || d.Remaining != 100-51 {
		t.Fatalf("%+v, want the 51st request: counting starts from the loaded total", d)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.total("partner").Count; got != 51 {
		t.Fatalf("stored %d after Close, want 51", got)
	}
	calls := f.addCalls()
	if err := g.Close(); err != nil || f.addCalls() != calls {
		t.Fatalf("second Close: %v, %d more calls", err, f.addCalls()-calls)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !os.IsNotExist(err) {
		t.Fatalf("a quota file was written in shared mode: %v", err)
	}
	f.mu.Lock()
	saves, loads := f.saves, f.loads
	f.mu.Unlock()
	if saves != 0 || loads != 1 {
		t.Fatalf("%d saves, %d loads; want none and one", saves, loads)
	}

	// A store opened first stays.
	r := NewRegistry(slog.New(slog.DiscardHandler), clk.now)
	if err := r.OpenStore(fs); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f2 := newFake()
	if err := r.OpenShared(f2, time.Hour); !errors.Is(err, ErrStoreOpen) || f2.loads != 0 {
		t.Fatalf("OpenShared after OpenStore: %v (%d loads), want ErrStoreOpen", err, f2.loads)
	}

	// interval <= 0 is the default.
	d := NewRegistry(slog.New(slog.DiscardHandler), clk.now)
	if err := d.OpenShared(newFake(), 0); err != nil {
		t.Fatal(err)
	}
	if d.interval != DefaultSyncInterval {
		t.Fatalf("interval %v, want %v", d.interval, DefaultSyncInterval)
	}
	d.Close()
}

// Old periods are pruned from the store once an hour, not every sync.
func TestShared_PrunesHourly(t *testing.T) {
	f := newFake()
	clk := newClock(day0)
	g := newShared(t, f, clk)
	mustFlush(t, g)
	mustFlush(t, g)
	clk.set(day0.Add(30 * time.Minute))
	mustFlush(t, g)
	clk.set(day0.Add(time.Hour))
	mustFlush(t, g)
	want := []int64{day0.Add(-maxPeriod).Unix(), day0.Add(time.Hour - maxPeriod).Unix()}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pruned) != 2 || f.pruned[0] != want[0] || f.pruned[1] != want[1] {
		t.Fatalf("pruned before %v, want %v", f.pruned, want)
	}
}

// A store down for minutes is reported once a minute, with the number of
// failed syncs, and its recovery once.
func TestFailureLog_OncePerMinute(t *testing.T) {
	var buf bytes.Buffer
	fl := failureLog{logger: slog.New(slog.NewTextHandler(&buf, nil))}
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for i := range 150 { // one failure a second
		fl.failed(errors.New("connection refused"), t0.Add(time.Duration(i)*time.Second))
	}
	fl.succeeded()
	fl.succeeded()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 3 reports and a recovery:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"failed=1", "failed=60", "failed=60", "failed=29"} {
		if !strings.Contains(lines[i], want) {
			t.Fatalf("line %d: %s, want %s", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[3], "level=INFO") {
		t.Fatalf("last line %s, want the recovery", lines[3])
	}
}

// Counting an allowed request on a known key allocates nothing, shared
// or not.
func TestCounter_AllowDoesNotAllocate(t *testing.T) {
	for _, shared := range []bool{false, true} {
		c := newCounter(Params{Limit: 1 << 40, Period: Day, Location: time.UTC, MaxKeys: 10})
		c.shared = shared
		c.allow("k", day0)
		if n := testing.AllocsPerRun(100, func() { c.allow("k", day0) }); n != 0 {
			t.Fatalf("shared=%v: %v allocations per request", shared, n)
		}
	}
}

// BenchmarkCounter_Allow is the request path's cost on a known key.
func BenchmarkCounter_Allow(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(map[bool]string{false: "local", true: "shared"}[shared], func(b *testing.B) {
			c := newCounter(Params{Limit: 1 << 62, Period: Day, Location: time.UTC, MaxKeys: 10})
			c.shared = shared
			for b.Loop() {
				c.allow("partner", day0)
			}
		})
	}
}
