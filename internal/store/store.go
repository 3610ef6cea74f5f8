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
	// ErrTooManyInstances and ErrTooManyServices: AddInstance refused a
	// new instance that would pass its limits.
	ErrTooManyInstances = errors.New("store: the service has the most instances allowed")
	ErrTooManyServices  = errors.New("store: the most services with instances allowed are registered")
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
	// AddInstance is PutInstance for a registration: it replaces the
	// instance (Service, ID) if it exists unexpired at now, and otherwise
	// writes it only if its
	// service then holds at most maxInstances instances unexpired at now
	// and, for a service without one, at most maxServices services hold
	// one (0: no bound); otherwise ErrTooManyInstances or
	// ErrTooManyServices, and nothing changes. Atomic: gateways sharing
	// the store cannot together pass the bounds.
	AddInstance(ctx context.Context, in Instance, now time.Time, maxInstances, maxServices int) error
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

// PublishedKey is the public half of a backend token signing key, as one
// gateway publishes it for the others: with several gateways sharing a
// store, each serves every gateway's public keys in its JWKS, so that a
// backend that fetched the JWKS through any of them can verify a token
// minted by any. Private keys never leave their gateway's key directory.
type PublishedKey struct {
	KID string
	Alg string
	// JWK is the public key as a JSON Web Key (RFC 7517).
	JWK []byte
	// Activates is when the key signs (or signed) its first token.
	Activates time.Time
	// Expires is when the key may leave the JWKS: its last token has
	// expired, with the clock skew. A gateway that keeps publishing the
	// key moves it forward.
	Expires time.Time
}

// PublishedKeys keeps the public signing keys gateways publish to each
// other.
type PublishedKeys interface {
	// PutPublishedKeys adds the keys, or updates keys already there; an
	// update never moves a key's expiry earlier (two gateways that share
	// a key directory publish the same key).
	PutPublishedKeys(ctx context.Context, keys []PublishedKey) error
	// DeletePublishedKeys removes the keys of those kids that exist.
	DeletePublishedKeys(ctx context.Context, kids []string) error
	// ListPublishedKeys returns the keys that expire after now, ordered
	// by kid.
	ListPublishedKeys(ctx context.Context, now time.Time) ([]PublishedKey, error)
	// DeleteExpiredPublishedKeys removes the keys expired at now and says
	// how many.
	DeleteExpiredPublishedKeys(ctx context.Context, now time.Time) (int, error)
}

// DashboardSession is a person signed in to the dashboard. Key is the
// hex SHA-256 of the session cookie's random value, never the value, so
// that the table gives no usable cookie. Scope names the dashboard
// settings it was made under (a digest of them): a change of the settings
// ends the sessions of the others.
type DashboardSession struct {
	Key      string
	Scope    string
	User     string
	Name     string
	Role     int
	CSRF     string
	Created  time.Time
	LastSeen time.Time
}

// DashboardLogin is a dashboard sign-in on its way to the identity
// provider and back. Key is the hex SHA-256 of its state parameter.
type DashboardLogin struct {
	Key      string
	Verifier string // the PKCE code_verifier
	Nonce    string
	ReturnTo string
	Peer     string // the client's address, without its port
	Created  time.Time
}

// DashboardSessions keeps the dashboard's sessions and sign-ins in
// progress, so that gateways sharing a store share them: a person's
// requests may reach any of them.
type DashboardSessions interface {
	// PutDashboardSession creates or replaces a session. When more than
	// max sessions are then stored, the least recently seen ones are
	// removed until max remain (max <= 0: no bound).
	PutDashboardSession(ctx context.Context, s DashboardSession, max int) error
	// GetDashboardSession returns a session, or ErrNotFound.
	GetDashboardSession(ctx context.Context, key string) (DashboardSession, error)
	// TouchDashboardSession sets a session's LastSeen to at, unless it is
	// already later; ErrNotFound when there is no such session.
	TouchDashboardSession(ctx context.Context, key string, at time.Time) error
	// DeleteDashboardSession removes a session, or returns ErrNotFound.
	DeleteDashboardSession(ctx context.Context, key string) error
	// DeleteIdleDashboardSessions removes the sessions of scope last seen
	// before seenBefore or created before createdBefore, and says how
	// many.
	DeleteIdleDashboardSessions(ctx context.Context, scope string, seenBefore, createdBefore time.Time) (int, error)
	// DeleteDashboardSessionsOutside removes the sessions of every scope
	// but scope, and says how many.
	DeleteDashboardSessionsOutside(ctx context.Context, scope string) (int, error)
	// DeleteExpiredDashboardLogins removes the sign-ins created before
	// createdBefore, and says how many.
	DeleteExpiredDashboardLogins(ctx context.Context, createdBefore time.Time) (int, error)
	// AddDashboardLogin records a sign-in in progress, after removing
	// those created before expiredBefore. It refuses (false, nil) when
	// maxPerPeer sign-ins from l.Peer are already in progress; when max
	// are in progress in all, the oldest is removed to make room.
	AddDashboardLogin(ctx context.Context, l DashboardLogin, expiredBefore time.Time, max, maxPerPeer int) (bool, error)
	// TakeDashboardLogin removes and returns a sign-in in progress, or
	// returns ErrNotFound; of two gateways taking the same one at once,
	// exactly one gets it.
	TakeDashboardLogin(ctx context.Context, key string) (DashboardLogin, error)
}

// UpstreamHour is one hour of one operation's upstream statistics as one
// gateway process kept them (package observe encodes Data; the store does
// not read it), so that the suggested timeouts and limits
// (docs/suggestions.md) span restarts and every gateway sharing the store.
type UpstreamHour struct {
	// Process names the gateway process that wrote the row (a random ID
	// per start).
	Process   string
	API       string
	Operation string
	// Hour is the hour the row covers, in hours since the Unix epoch.
	Hour    int64
	Data    []byte
	Updated time.Time
}

// UpstreamHours keeps each gateway process's hours of upstream statistics.
type UpstreamHours interface {
	// PutUpstreamHours inserts the rows, or replaces those with the same
	// Process, API, Operation and Hour, in one transaction.
	PutUpstreamHours(ctx context.Context, rows []UpstreamHour) error
	// ListUpstreamHours returns every row with Hour >= since, ordered by
	// Process, API, Operation and Hour.
	ListUpstreamHours(ctx context.Context, since int64) ([]UpstreamHour, error)
	// DeleteUpstreamHoursBefore removes the rows with Hour < before and
	// says how many.
	DeleteUpstreamHoursBefore(ctx context.Context, before int64) (int, error)
}

// Store is every concern together, as an implementation provides it.
type Store interface {
	Instances
	Consumers
	ConfigRevisions
	Counters
	QuotaCounters
	AuditLog
	PublishedKeys
	DashboardSessions
	UpstreamHours
	// Close releases the store.
	Close() error
}
