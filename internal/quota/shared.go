package quota

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// DefaultSyncInterval is how often, in shared mode, a gateway adds its new
// counts to the shared store and learns the others'. It bounds how far a
// quota can be overrun (see OpenShared), against one store round trip per
// gateway per interval.
const DefaultSyncInterval = time.Second

// pruneInterval is how often, in shared mode, totals of periods older than
// any (maxPeriod) are removed from the shared store. Every gateway prunes;
// the removal is idempotent and cheap.
const pruneInterval = time.Hour

// failureLogInterval is the least time between two reports of failed
// syncs: with a sync every second, a store down for an hour would
// otherwise log 3,600 lines.
const failureLogInterval = time.Minute

// ErrStoreOpen is returned by OpenShared (and by OpenStore after
// OpenShared) when the registry already has a store: a registry keeps the
// store it opened first until a restart.
var ErrStoreOpen = errors.New("quota: a store is already open")

// OpenShared makes the registry count with other gateways in s, syncing
// every interval (DefaultSyncInterval if interval <= 0). It loads the
// current totals, which the counters (and the quotas configured later)
// start from, and never calls the store on the request path: a request
// is counted in memory, and each sync adds to the shared totals what
// this gateway counted since the last one, then takes the totals back.
//
// So each gateway sees the others' counts as of its last sync of a key
// (Load's totals for a key it has not counted since it opened the store).
// Once a quota's shared total has reached its limit, a gateway admits
// requests only until its next sync of the key, which happens within one
// interval of its first such request: a quota can be overrun by at most
// what the gateways admit for a key within about one sync interval (plus
// a store round trip). A key that is idle on one gateway is not refreshed
// there (that would write every key held, every interval): when traffic
// for it moves to that gateway, the bound is that gateway's own admissions
// in one interval. While the store cannot be reached, each gateway counts
// on alone and keeps its counts to send once it can.
//
// Only the first store is kept: OpenShared after OpenShared or OpenStore
// returns ErrStoreOpen, and Open (the file store) reports the open
// store's use, whatever the directory. Save is never called in shared
// mode.
func (r *Registry) OpenShared(s SharedStore, interval time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.store != nil || r.shared != nil {
		return ErrStoreOpen
	}
	records, err := s.Load()
	if err != nil {
		return err
	}
	if interval <= 0 {
		interval = DefaultSyncInterval
	}
	r.shared, r.interval = s, interval
	for _, c := range r.counters {
		c.mu.Lock()
		c.shared = true
		c.mu.Unlock()
	}
	for _, rec := range records {
		id := ID{rec.API, rec.Operation, rec.Name, rec.KeySpec}
		if c := r.counters[id]; c != nil {
			c.restore([]Record{rec})
			continue
		}
		r.pending[id] = append(r.pending[id], rec)
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.syncLoop(r.stop, r.done)
	return nil
}

func (r *Registry) syncLoop(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	fl := failureLog{logger: r.logger}
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := r.Flush(); err != nil {
				fl.failed(err, r.now())
			} else {
				fl.succeeded()
			}
		}
	}
}

// sync adds every counter's unsent counts to the shared store and applies
// the totals returned. The counts are read under each counter's lock but
// left in place (count - synced) until the store has taken them, and no
// lock but syncMu is held during the call: requests go on being counted,
// and a failed call leaves every count to send at the next sync, none
// lost and none sent twice.
func (r *Registry) sync() error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	st := r.shared
	ids := make([]ID, 0, len(r.counters)+len(r.released))
	for id := range r.counters {
		ids = append(ids, id)
	}
	for id := range r.released {
		ids = append(ids, id)
	}
	// One order for every gateway (that of the store's key), so that
	// concurrent batches lock the same rows in the same order.
	slices.SortFunc(ids, compareIDs)
	var b syncBatch
	for _, id := range ids {
		c := r.counters[id]
		if c == nil {
			c = r.released[id]
		}
		b.collect(id, c)
	}
	r.mu.Unlock()

	err := b.send(st, r.now)
	if now := r.now(); now.Sub(r.lastPrune) >= pruneInterval {
		r.lastPrune = now // once an hour, even if it fails
		if perr := st.Prune(now.Add(-maxPeriod).Unix()); perr != nil {
			err = errors.Join(err, fmt.Errorf("pruning old quota periods: %w", perr))
		}
	}
	return err
}

func compareIDs(a, b ID) int {
	return cmp.Or(strings.Compare(a.API, b.API), strings.Compare(a.Operation, b.Operation),
		strings.Compare(a.Name, b.Name), strings.Compare(a.Key, b.Key))
}

// syncBatch is the counts of one sync: recs, counter by counter, each
// counter's ending at its span's end.
type syncBatch struct {
	recs  []Record
	spans []span
}

type span struct {
	c   *Counter
	end int
}

// collect appends the counter's unsent counts (of any period: the store
// takes those of its current one) if it counted since its last sync.
func (b *syncBatch) collect(id ID, c *Counter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return
	}
	// A request counted from now on marks it again; a failed send too.
	c.dirty = false
	from := len(b.recs)
	for k, e := range c.entries {
		if d := e.count - e.synced; d > 0 {
			b.recs = append(b.recs, Record{API: id.API, Operation: id.Operation, Name: id.Name, KeySpec: id.Key, Key: k, Start: e.start, Count: d})
		}
	}
	if len(b.recs) == from {
		return
	}
	slices.SortFunc(b.recs[from:], func(x, y Record) int { return strings.Compare(x.Key, y.Key) })
	b.spans = append(b.spans, span{c: c, end: len(b.recs)})
}

// send adds the batch to the store and reconciles each counter with the
// totals returned; now is read after the call, for the periods.
func (b *syncBatch) send(st SharedStore, now func() time.Time) error {
	if len(b.recs) == 0 {
		return nil
	}
	totals, err := st.Add(b.recs)
	if err != nil {
		for _, sp := range b.spans {
			sp.c.mu.Lock()
			sp.c.dirty = true
			sp.c.mu.Unlock()
		}
		return err
	}
	if len(totals) != len(b.recs) {
		// The store took the counts, but its answer cannot be matched
		// to them: acknowledge them (sending them again would count
		// them twice) and keep the totals held.
		err = fmt.Errorf("quota store returned %d totals for %d counts", len(totals), len(b.recs))
		totals = nil
	}
	t := now()
	from := 0
	for _, sp := range b.spans {
		var tot []Record
		if totals != nil {
			tot = totals[from:sp.end]
		}
		sp.c.reconcile(b.recs[from:sp.end], tot, t)
		from = sp.end
	}
	return err
}

// reconcile applies a successful Add: sent are the counts sent, totals
// (nil if unusable) the totals returned, in the same order. The counter
// may have moved on during the call; the counts it made meanwhile are
// kept on top of the totals, to be sent at the next sync.
func (c *Counter) reconcile(sent, totals []Record, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, end := c.params.Period.Bounds(now, c.params.Location)
	next := end.Unix()
	for i, rec := range sent {
		e := c.entries[rec.Key]
		if e == nil {
			continue // dropped as expired during the call: nothing to keep
		}
		if e.start == rec.Start {
			// The store has these counts now (or has refused them
			// for a later period, which settle then adopts).
			// Otherwise the entry renewed during the call: the counts
			// sent left it then, and what it holds is of the new
			// period, still to send.
			e.synced += rec.Count
		}
		if totals != nil && totals[i].Key == rec.Key {
			e.settle(totals[i].Start, totals[i].Count, next)
		}
	}
}

// settle takes the shared total of the entry's key for the period that
// began at start, keeping on top of it what the entry counted and has not
// sent. A total of an earlier period than the entry's is of no use (the
// entry renewed since). One of the next period (next: its start by this
// gateway's clock) means that another gateway's clock reached it first:
// the entry adopts it, and its unsent counts move with it, as the store
// would take no more counts of the old period. A later period than that
// is not adopted: it comes from a clock plainly wrong (or another
// configuration of the quota's period), and adopting it would hold the
// quota to one period for as long as that clock is ahead.
func (e *entry) settle(start, total, next int64) {
	if start < e.start || (start > e.start && start != next) {
		return
	}
	e.count = total + e.count - e.synced
	e.start, e.synced = start, total
}

// holdsSince says whether the counter holds a count of a period that
// began at or after oldest (unix seconds).
func (c *Counter) holdsSince(oldest int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.start >= oldest {
			return true
		}
	}
	return false
}

// failureLog reports failed syncs at most once per failureLogInterval,
// with the number of failures since the last report (failed), and says
// once when syncs work again after a report.
type failureLog struct {
	logger *slog.Logger
	last   time.Time // of the last report of a failure
	count  int       // failures not reported yet
	down   bool      // a failure was reported, no sync succeeded since
}

func (f *failureLog) failed(err error, now time.Time) {
	f.count++
	if !f.last.IsZero() && now.Sub(f.last) < failureLogInterval {
		return
	}
	f.logger.Error("syncing quota counters with the shared store; the counts are kept and sent again", "error", err, "failed", f.count)
	f.last, f.count, f.down = now, 0, true
}

func (f *failureLog) succeeded() {
	if !f.down {
		return
	}
	f.logger.Info("quota counters synced with the shared store again", "failed", f.count)
	f.count, f.down = 0, false
}
