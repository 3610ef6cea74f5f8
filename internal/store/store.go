// Package store defines the run-time state Gatehouse keeps outside its
// configuration — registered instances, consumers and their API keys, the
// audit log, configuration revisions and counters — as small interfaces,
// one per concern. Implementations live in sub-packages (sqlite, the
// embedded default); storetest holds the suite every implementation
// passes, so that a cluster implementation can follow without touching
// callers.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors shared by implementations. Callers test them with errors.Is.
var (
	// ErrNotFound: the named record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a record with that name already exists.
	ErrConflict = errors.New("store: already exists")
)

// Instance is one registered instance of a backend service.
type Instance struct {
	Service string `json:"service"`
	// ID identifies the instance within its service: host:port.
	ID       string            `json:"id"`
	Scheme   string            `json:"scheme"` // http or https
	Address  string            `json:"address"`
	Port     int               `json:"port"`
	Weight   int               `json:"weight"`
	Zone     string            `json:"zone,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	TTL      time.Duration     `json:"-"`
	// Registered is when it was first registered, Heartbeat when it last
	// heartbeated (or registered), Expires when it leaves the pool.
	Registered time.Time `json:"registered"`
	Heartbeat  time.Time `json:"heartbeat"`
	Expires    time.Time `json:"expires"`
	// Actor is who registered it.
	Actor string `json:"registered_by,omitempty"`
}

// Instances keeps registered instances.
type Instances interface {
	// PutInstance creates or replaces the instance (Service, ID).
	PutInstance(ctx context.Context, in Instance) error
	// GetInstance returns one instance, or ErrNotFound.
	GetInstance(ctx context.Context, service, id string) (Instance, error)
	// DeleteInstance removes one instance, or returns ErrNotFound.
	DeleteInstance(ctx context.Context, service, id string) error
	// ListInstances returns the instances of service ("" for every
	// service), ordered by service then ID.
	ListInstances(ctx context.Context, service string) ([]Instance, error)
	// ExpireInstance removes the instance only if its stored expiry is at
	// or before now, atomically; ErrNotFound when there is no such
	// instance or when it was renewed (its stored expiry is after now).
	// With several gateways sharing one store, exactly one of them
	// removes (and audits) an expiry, and none removes an instance that
	// another has just renewed.
	ExpireInstance(ctx context.Context, service, id string, now time.Time) error
}

// Consumer is a caller that authenticates with API keys, managed through
// the admin API (consumers written in the configuration are not here).
type Consumer struct {
	Name    string    `json:"name"`
	Groups  []string  `json:"groups"`
	Roles   []string  `json:"roles"`
	Scopes  []string  `json:"scopes"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Key slots: every consumer has at most one key in each, so that one can
// be replaced while the other keeps working.
const (
	SlotPrimary   = "primary"
	SlotSecondary = "secondary"
)

// Key is the stored form of an API key: its SHA-256, never the key.
type Key struct {
	Consumer string    `json:"consumer"`
	Slot     string    `json:"slot"`
	Hash     [32]byte  `json:"-"`
	Created  time.Time `json:"created"`
}

// Consumers keeps consumers and the hashes of their keys.
type Consumers interface {
	// CreateConsumer adds a consumer, or returns ErrConflict.
	CreateConsumer(ctx context.Context, c Consumer) error
	// GetConsumer returns a consumer, or ErrNotFound.
	GetConsumer(ctx context.Context, name string) (Consumer, error)
	// ListConsumers returns every consumer, ordered by name.
	ListConsumers(ctx context.Context) ([]Consumer, error)
	// DeleteConsumer removes a consumer and its keys, or returns ErrNotFound.
	DeleteConsumer(ctx context.Context, name string) error
	// PutKey sets the key of a consumer's slot, replacing the one there;
	// ErrNotFound if the consumer does not exist, ErrConflict if another
	// slot already holds the same hash.
	PutKey(ctx context.Context, k Key) error
	// DeleteKey removes the key of a slot, or returns ErrNotFound.
	DeleteKey(ctx context.Context, consumer, slot string) error
	// ListKeys returns the keys of consumer ("" for every consumer),
	// ordered by consumer then slot.
	ListKeys(ctx context.Context, consumer string) ([]Key, error)
	// KeysRevision returns a number that changes whenever a consumer or
	// a key changes, so that a cache of keys can tell cheaply that it is
	// stale.
	KeysRevision(ctx context.Context) (int64, error)
}

// ConfigRevision records one configuration load.
type ConfigRevision struct {
	Seq     int64     `json:"seq"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	Source  string    `json:"source"` // start, SIGHUP, file changed, admin API, ...
	Actor   string    `json:"actor"`
	// Text is the configuration file as it was loaded ("" when not kept);
	// secrets are references in it, never values.
	Text string `json:"-"`
}

// ConfigRevisions keeps the history of loaded configurations.
type ConfigRevisions interface {
	// AddConfigRevision appends a revision and returns it with its Seq.
	AddConfigRevision(ctx context.Context, r ConfigRevision) (ConfigRevision, error)
	// ListConfigRevisions returns the latest revisions, newest first,
	// without their text.
	ListConfigRevisions(ctx context.Context, limit int) ([]ConfigRevision, error)
	// ConfigText returns the text of the newest revision of version, or
	// ErrNotFound.
	ConfigText(ctx context.Context, version string) (string, error)
}

// Counters keeps named counters that reset after a deadline (quota
// windows).
type Counters interface {
	// AddCounter adds delta to the counter key and returns the new value.
	// A counter that does not exist, or whose expiry has passed at now,
	// starts again from zero with the given expiry.
	AddCounter(ctx context.Context, key string, delta int64, expires, now time.Time) (int64, error)
	// GetCounter returns the value of a live counter (0 if absent or
	// expired at now).
	GetCounter(ctx context.Context, key string, now time.Time) (int64, error)
	// DeleteExpiredCounters removes counters expired at now and says how
	// many.
	DeleteExpiredCounters(ctx context.Context, now time.Time) (int, error)
}

// QuotaCounter is the count of one quota key in one calendar period.
type QuotaCounter struct {
	API, Operation, Name, KeySpec, Key string
	// Start is the beginning of the counted period.
	Start time.Time
	Count int64
}

// QuotaCounters keep the quota counters across restarts. The quota
// registry holds them in memory and writes the current set back
// periodically, so the store replaces the set whole.
type QuotaCounters interface {
	// LoadQuotaCounters returns every saved counter.
	LoadQuotaCounters(ctx context.Context) ([]QuotaCounter, error)
	// ReplaceQuotaCounters replaces the saved set with cs, atomically.
	// It is for a store one gateway owns: gateways that share a store
	// count with AddQuotaCounts instead.
	ReplaceQuotaCounters(ctx context.Context, cs []QuotaCounter) error
	// AddQuotaCounts adds each delta's Count to the stored count of its
	// (API, Operation, Name, KeySpec, Key), atomically for the whole
	// batch, and returns the stored counters after the addition, one per
	// delta and in the same order. The period decides: a stored count of
	// an earlier period than the delta's Start is replaced by the delta
	// (the period renewed); a delta of an earlier period than the stored
	// one is not added (another gateway has moved on) and the stored
	// counter is returned as it is. Counts are never negative: a delta
	// below zero is refused. Several gateways may call it at once.
	AddQuotaCounts(ctx context.Context, deltas []QuotaCounter) ([]QuotaCounter, error)
	// DeleteQuotaCountersBefore removes the counters of periods that
	// began before start and says how many.
	DeleteQuotaCountersBefore(ctx context.Context, start time.Time) (int, error)
}

// AuditLog is the append-only, hash-chained audit log.
type AuditLog interface {
	// AppendAudit adds a record at the end of the log: the store assigns
	// Seq and PrevHash and computes Hash (see AuditHash), atomically, and
	// returns the record as stored.
	AppendAudit(ctx context.Context, r AuditRecord) (AuditRecord, error)
	// ListAudit returns up to limit records with Seq > after, in order.
	ListAudit(ctx context.Context, after int64, limit int) ([]AuditRecord, error)
}

// Store is every concern together, as an implementation provides it.
type Store interface {
	Instances
	Consumers
	ConfigRevisions
	Counters
	QuotaCounters
	AuditLog
	// Close releases the store.
	Close() error
}
