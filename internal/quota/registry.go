package quota

import (
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"
)

// ID names a quota's state so that a reload or a restart finds it again.
type ID struct {
	API, Operation, Name, Key string
}

// DefaultFlushInterval is how often changed counters are written to the
// store. A crash loses at most this much counting; a clean stop loses none.
const DefaultFlushInterval = 10 * time.Second

// maxPeriod is longer than the longest period (a month, or a day of 25
// hours): unclaimed records older than this are of no use.
const maxPeriod = 32 * 24 * time.Hour

// Registry holds the counters of every configured quota and persists them.
type Registry struct {
	logger   *slog.Logger
	now      func() time.Time
	interval time.Duration

	mu       sync.Mutex
	counters map[ID]*Counter
	store    Store
	dir      string
	pending  map[ID][]Record // loaded or released, not (yet) claimed by a quota
	// pendingDirty: pending holds counts the store has not seen (a
	// released counter's).
	pendingDirty bool
	stop         chan struct{}
	done         chan struct{}
	closed       bool

	// Shared mode (OpenShared); store and dir are then unset.
	shared SharedStore
	// released holds, in shared mode, the counters that Retain dropped:
	// the flush still sends their unsent counts and applies the totals
	// returned, even for a counter dropped while its counts are being
	// sent, and a quota that comes back with the same ID takes the
	// counter back with its totals (see Prepare).
	released map[ID]*Counter
	// syncMu serializes syncs, so that a count is in one Add at a time;
	// it is held across the store call, which r.mu is not.
	syncMu    sync.Mutex
	lastPrune time.Time // of the last Prune; syncMu is held
}

// NewRegistry returns a registry with no store: counters are kept in
// memory until Open gives it one. now is the clock (nil: time.Now).
func NewRegistry(logger *slog.Logger, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{logger: logger, now: now, interval: DefaultFlushInterval, counters: map[ID]*Counter{}, pending: map[ID][]Record{}, released: map[ID]*Counter{}}
}

// Open loads the counters of the file store in dir and starts writing them
// back every flush interval. Only the first call opens a store; a later
// call with another directory reports false (the change needs a restart).
func (r *Registry) Open(dir string) (ok bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.store != nil || r.shared != nil {
		// A store given by OpenStore (the embedded database) or
		// OpenShared serves whatever the data directory.
		return r.dir == "" || r.dir == dir, nil
	}
	fs, err := NewFileStore(dir)
	if err != nil {
		return false, err
	}
	return true, r.openLocked(fs, dir)
}

// OpenStore is Open with any store (tests, the embedded database).
func (r *Registry) OpenStore(s Store) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shared != nil {
		return ErrStoreOpen
	}
	return r.openLocked(s, "")
}

func (r *Registry) openLocked(s Store, dir string) error {
	records, err := s.Load()
	if err != nil {
		return err
	}
	r.store, r.dir = s, dir
	for _, rec := range records {
		id := ID{rec.API, rec.Operation, rec.Name, rec.KeySpec}
		if c := r.counters[id]; c != nil {
			c.restore([]Record{rec})
			continue
		}
		r.pending[id] = append(r.pending[id], rec)
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.flushLoop(r.stop, r.done)
	return nil
}

func (r *Registry) flushLoop(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := r.Flush(); err != nil {
				r.logger.Error("saving quota counters", "error", err)
			}
		}
	}
}

// Get returns the counter of id, creating it (with any counts loaded from
// the store) or updating its parameters.
func (r *Registry) Get(id ID, p Params) *Counter {
	c, apply := r.Prepare(id, p)
	if apply != nil {
		apply()
	}
	return c
}

// Prepare is Get for a configuration being compiled, which may yet be
// refused: a new counter is made at once (Retain drops it if the
// configuration is refused), but new parameters of an existing one are
// returned as apply, to be called once the new configuration is in
// place (nil when there is none).
func (r *Registry) Prepare(id ID, p Params) (c *Counter, apply func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.counters[id]; ok {
		return c, func() { c.setParams(p) }
	}
	if c, ok := r.released[id]; ok {
		// Its unsent counts are still to be sent: the counter itself
		// comes back, rather than records of its counts.
		delete(r.released, id)
		c.setParams(p)
		r.counters[id] = c
		return c, nil
	}
	c = newCounter(p)
	c.shared = r.shared != nil
	if recs, ok := r.pending[id]; ok {
		c.restore(recs)
		delete(r.pending, id)
	}
	r.counters[id] = c
	return c, nil
}

func (c *Counter) restore(recs []Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.swept = 0 // restored entries may be of past periods
	for _, rec := range recs {
		if c.shared {
			// Shared totals: what this gateway counted before (a
			// counter made before OpenShared) is added to them. Any
			// later period is taken, as a new entry would be; allow
			// renews it unless it is the next one.
			if e := c.entries[rec.Key]; e != nil {
				e.settle(rec.Start, rec.Count, rec.Start)
				continue
			}
		}
		if len(c.entries) >= c.params.MaxKeys && c.entries[rec.Key] == nil {
			continue
		}
		e := &entry{start: rec.Start, count: rec.Count}
		if c.shared {
			e.synced = rec.Count
		}
		c.entries[rec.Key] = e
	}
}

// Retain drops the counters whose ID is not in keep. Their counts, like
// records loaded from the store that no quota claimed, are kept (and
// saved) until they are older than any period, and a quota with that ID
// claims them again: a configuration that briefly lacks a quota, or one
// refused after its compile made a new quota, does not erase its counts.
func (r *Registry) Retain(keep map[ID]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := r.now().Add(-maxPeriod).Unix()
	for id, c := range r.counters {
		if keep[id] {
			continue
		}
		delete(r.counters, id)
		if r.shared != nil {
			r.released[id] = c
			continue
		}
		recs := c.records(id, oldest)
		if len(recs) == 0 {
			continue
		}
		r.pending[id] = append(r.pending[id], recs...)
		r.pendingDirty = true
	}
	for id, recs := range r.pending {
		recs = slices.DeleteFunc(recs, func(rec Record) bool { return rec.Start < oldest })
		if len(recs) == 0 {
			delete(r.pending, id)
			continue
		}
		r.pending[id] = recs
	}
	for id, c := range r.released {
		if !c.holdsSince(oldest) {
			delete(r.released, id)
		}
	}
}

// records returns the counter's counts of periods that began at or after
// oldest (unix seconds).
func (c *Counter) records(id ID, oldest int64) []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.appendSince(nil, id, oldest)
}

// Flush writes every counter of a current period to the store, if any
// changed since the last flush.
//
// In shared mode it sends the counts made since the last sync instead
// and takes the totals returned (see OpenShared).
func (r *Registry) Flush() error {
	r.mu.Lock()
	if r.shared != nil {
		r.mu.Unlock()
		return r.sync()
	}
	defer r.mu.Unlock()
	return r.flushLocked(r.now())
}

func (r *Registry) flushLocked(now time.Time) error {
	if r.store == nil {
		return nil
	}
	dirty := r.pendingDirty
	for _, c := range r.counters {
		c.mu.Lock()
		dirty = dirty || c.dirty
		c.mu.Unlock()
	}
	if !dirty {
		return nil
	}
	var recs []Record
	for id, c := range r.counters {
		recs = c.appendRecords(recs, id, now)
	}
	oldest := now.Add(-maxPeriod).Unix()
	for _, pend := range r.pending {
		for _, rec := range pend {
			if rec.Start >= oldest {
				recs = append(recs, rec)
			}
		}
	}
	sort.Slice(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if a.API != b.API || a.Operation != b.Operation || a.Name != b.Name || a.KeySpec != b.KeySpec {
			return a.API+"\x00"+a.Operation+"\x00"+a.Name+"\x00"+a.KeySpec < b.API+"\x00"+b.Operation+"\x00"+b.Name+"\x00"+b.KeySpec
		}
		return a.Key < b.Key
	})
	// appendRecords cleared each counter's dirty flag as it read it, so
	// that a request counted while Save runs marks it again.
	if err := r.store.Save(recs); err != nil {
		for _, c := range r.counters {
			c.mu.Lock()
			c.dirty = true
			c.mu.Unlock()
		}
		return err
	}
	r.pendingDirty = false
	return nil
}

// appendRecords appends the counters of current periods (older ones are
// dropped: they renew anyway) and marks the counter saved.
func (c *Counter) appendRecords(recs []Record, id ID, now time.Time) []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirty = false
	start, _ := c.params.Period.Bounds(now, c.params.Location)
	return c.appendSince(recs, id, start.Unix())
}

// appendSince appends the counts of periods that began at or after since
// (unix seconds); c.mu is held.
func (c *Counter) appendSince(recs []Record, id ID, since int64) []Record {
	for k, e := range c.entries {
		if e.start < since || e.count == 0 {
			continue
		}
		recs = append(recs, Record{API: id.API, Operation: id.Operation, Name: id.Name, KeySpec: id.Key, Key: k, Start: e.start, Count: e.count})
	}
	return recs
}

// Close stops the periodic flush and writes the counters one last time
// (in shared mode: sends the counts not yet sent, those of counters
// that Retain dropped too).
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed || r.stop == nil {
		r.closed = true
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	stop, done := r.stop, r.done
	r.mu.Unlock()
	close(stop)
	<-done
	if err := r.Flush(); err != nil {
		r.logger.Error("saving quota counters", "error", err)
		return err
	}
	return nil
}
