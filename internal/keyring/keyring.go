// Package keyring keeps in memory the API keys of the consumers held in
// the store, so that the request path finds a key's consumer with a map
// lookup and never a database query. The table is rebuilt when the
// store's keys revision changes: at once when this process made the
// change (Refresh), and within the poll interval when another did.
package keyring

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// DefaultPollInterval is how often Run checks the store for changes made
// elsewhere.
const DefaultPollInterval = 500 * time.Millisecond

// Ring is the in-memory table of store consumers' keys. Lookups are safe
// for concurrent use and never block on the store.
type Ring struct {
	st       store.Consumers
	logger   *slog.Logger
	interval time.Duration

	table atomic.Pointer[identity.KeyTable]
	mu    sync.Mutex // serializes rebuilds
	rev   int64      // revision of the table, under mu
}

// New loads the keys from the store.
func New(ctx context.Context, st store.Consumers, logger *slog.Logger, interval time.Duration) (*Ring, error) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	r := &Ring{st: st, logger: logger, interval: interval, rev: -1}
	r.table.Store(identity.NewKeyTable())
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// LookupHash returns the consumer whose key hashes to h.
func (r *Ring) LookupHash(h identity.KeyHash) (*identity.Principal, bool) {
	return r.table.Load().LookupHash(h)
}

// Lookup returns the consumer of key (policy.KeyLookup).
func (r *Ring) Lookup(key string) (*identity.Principal, bool) {
	if key == "" || len(key) > identity.MaxAPIKeyLen {
		return nil, false
	}
	return r.LookupHash(identity.HashKey(key))
}

// Len returns the number of keys in the table.
func (r *Ring) Len() int { return r.table.Load().Len() }

// Refresh rebuilds the table if the store changed since the last build.
// On error the table in use is kept.
func (r *Ring) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rev, err := r.st.KeysRevision(ctx)
	if err != nil {
		return err
	}
	if rev == r.rev {
		return nil
	}
	consumers, err := r.st.ListConsumers(ctx)
	if err != nil {
		return err
	}
	keys, err := r.st.ListKeys(ctx, "")
	if err != nil {
		return err
	}
	principals := make(map[string]*identity.Principal, len(consumers))
	for _, c := range consumers {
		principals[c.Name] = identity.NewStaticPrincipal(identity.CredentialAPIKey, c.Name, c.Name, c.Groups, c.Roles, c.Scopes)
	}
	t := identity.NewKeyTable()
	for _, k := range keys {
		p := principals[k.Consumer]
		if p == nil {
			continue // deleted between the two reads; the next refresh settles it
		}
		if err := t.Add(identity.KeyHash(k.Hash), p); err != nil {
			r.logger.Error("a stored API key is not usable", "consumer", k.Consumer, "slot", k.Slot, "error", err)
		}
	}
	r.table.Store(t)
	r.rev = rev
	return nil
}

// Run refreshes the table every poll interval until ctx is done. A
// failing store keeps the last table serving; the failure is logged once
// until it recovers.
func (r *Ring) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := r.Refresh(ctx)
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				r.logger.Error("refreshing API keys from the store failed; the last known keys keep serving", "error", err)
				failing = true
			case err == nil && failing:
				r.logger.Info("refreshing API keys from the store works again")
				failing = false
			}
		}
	}
}
