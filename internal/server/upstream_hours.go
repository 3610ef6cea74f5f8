package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// The suggested timeouts and limits read a day of each operation's
// upstream statistics (docs/suggestions.md). Each gateway process saves
// its own hours to the store every upstreamHoursEvery (and when it stops)
// and reads back the hours every other process saved: this gateway before
// a restart, and, with a shared PostgreSQL store, the other gateways. So
// the suggestions survive a restart and speak for every gateway's
// traffic.

// upstreamHoursEvery is how often the hours are saved and read back (a
// variable for tests).
var upstreamHoursEvery = time.Minute

// upstreamHoursSync saves and reads back the upstream hours.
type upstreamHoursSync struct {
	store   store.UpstreamHours
	stats   *observe.Stats
	process string
	logger  *slog.Logger
	now     func() time.Time
	// saved is the request count of each hour last saved, so that an hour
	// without new traffic is not written again.
	saved   map[savedHour]uint32
	failing bool // a failure was logged; the recovery will be
}

type savedHour struct {
	key  observe.UpstreamKey
	hour int64
}

// newProcessID names this gateway process in the store: its host name and
// a random suffix (a restart is a new process).
func newProcessID() string {
	b := make([]byte, 6)
	rand.Read(b)
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "gatehouse"
	}
	if len(host) > 64 {
		host = host[:64]
	}
	return host + "-" + hex.EncodeToString(b)
}

func newUpstreamHoursSync(st store.UpstreamHours, stats *observe.Stats, logger *slog.Logger) *upstreamHoursSync {
	return &upstreamHoursSync{store: st, stats: stats, process: newProcessID(), logger: logger,
		now: time.Now, saved: map[savedHour]uint32{}}
}

// run reads the others' hours at once, then saves and reads every
// upstreamHoursEvery until ctx is done, and saves a last time then.
func (u *upstreamHoursSync) run(ctx context.Context) {
	u.syncLogged(ctx)
	t := time.NewTicker(upstreamHoursEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// What the process counted since the last save, for the
			// gateway that starts next.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			u.syncLogged(fctx)
			cancel()
			return
		case <-t.C:
			u.syncLogged(ctx)
		}
	}
}

// syncLogged is sync with its failure logged once, until it works again.
func (u *upstreamHoursSync) syncLogged(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := u.sync(cctx)
	switch {
	case err != nil && !u.failing:
		u.failing = true
		u.logger.Warn("saving or reading the suggestions' upstream statistics in the store; each gateway advises from what it has meanwhile", "error", err)
	case err == nil && u.failing:
		u.failing = false
		u.logger.Info("the suggestions' upstream statistics are saved to the store again")
	}
}

// sync saves this process's hours that changed, reads back every other
// process's hours of the last day into the statistics, and removes the
// hours older than that.
func (u *upstreamHoursSync) sync(ctx context.Context) error {
	now := u.now()
	var rows []store.UpstreamHour
	var marks []savedHour
	var counts []uint32
	var errs []error
	for k, hours := range u.stats.OwnHours() {
		for _, h := range hours {
			sh := savedHour{k, h.Hour}
			if u.saved[sh] == h.Requests {
				continue
			}
			data, err := h.MarshalBinary()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			rows = append(rows, store.UpstreamHour{Process: u.process, API: k.API, Operation: k.Operation, Hour: h.Hour, Data: data, Updated: now})
			marks, counts = append(marks, sh), append(counts, h.Requests)
		}
	}
	if err := u.store.PutUpstreamHours(ctx, rows); err != nil {
		errs = append(errs, fmt.Errorf("saving: %w", err))
	} else {
		for i, m := range marks {
			u.saved[m] = counts[i]
		}
	}
	first := now.Unix()/3600 - 23 // the day's oldest hour
	for m := range u.saved {
		if m.hour < first {
			delete(u.saved, m)
		}
	}
	listed, err := u.store.ListUpstreamHours(ctx, first)
	if err != nil {
		errs = append(errs, fmt.Errorf("reading: %w", err))
	} else {
		others := map[observe.UpstreamKey][]observe.UpstreamHour{}
		bad := 0
		for _, r := range listed {
			if r.Process == u.process {
				continue
			}
			var h observe.UpstreamHour
			if err := h.UnmarshalBinary(r.Data); err != nil || h.Hour != r.Hour {
				bad++ // another version's, or damaged: left out
				continue
			}
			k := observe.UpstreamKey{API: r.API, Operation: r.Operation}
			others[k] = append(others[k], h)
		}
		u.stats.SetOtherHours(others)
		if bad > 0 {
			errs = append(errs, fmt.Errorf("%d saved hours could not be read (another version's, or damaged) and were left out", bad))
		}
	}
	if _, err := u.store.DeleteUpstreamHoursBefore(ctx, first); err != nil {
		errs = append(errs, fmt.Errorf("removing the hours older than a day: %w", err))
	}
	return errors.Join(errs...)
}
