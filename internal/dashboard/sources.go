package dashboard

import (
	"context"
	"errors"
	"time"
)

// The dashboard reads and changes the gateway's state through these small
// interfaces. Each has an in-memory implementation in this package (for
// tests and `gatehouse dev`); the embedded store, the admin API and the
// upstream health checks provide the real ones. A nil source shows its
// page as "not connected".

// Backends lists backend services and their instances.
type Backends interface {
	Backends(ctx context.Context) ([]Backend, error)
}

// Backend is one backend service.
type Backend struct {
	Name      string
	Instances []Instance
}

// Instance is one backend instance as the gateway sees it.
type Instance struct {
	URL string
	// Health is "healthy", "unhealthy" or "unknown" (no health checks).
	Health string
	// Breaker is the circuit breaker state: "closed", "open", "half-open",
	// or "" when the backend has no breaker.
	Breaker string
	Weight  int
	// Source is "static" (from the configuration) or "registered".
	Source string
	// Metadata is what the instance registered with: cluster, task ARN,
	// availability zone, revision...
	Metadata    map[string]string
	LastError   string
	LastErrorAt time.Time
}

// Consumers manages API consumers and their keys. Every change names the
// person who made it (actor) so that the implementation can audit it.
type Consumers interface {
	List(ctx context.Context) ([]Consumer, error)
	// Create makes a consumer with a primary key and returns the key,
	// which is never shown again.
	Create(ctx context.Context, actor string, c NewConsumer) (key string, err error)
	// Rotate replaces the key in slot ("primary" or "secondary") and
	// returns the new key.
	Rotate(ctx context.Context, actor, consumer, slot string) (key string, err error)
	// Revoke removes the key in slot.
	Revoke(ctx context.Context, actor, consumer, slot string) error
}

// NewConsumer is what the create form asks for.
type NewConsumer struct {
	Name   string
	Groups []string
	Scopes []string
}

// Consumer is a caller identified by API keys.
type Consumer struct {
	Name    string
	Groups  []string
	Scopes  []string
	Keys    []Key
	Created time.Time
	// ReadOnly consumers come from the configuration file and are changed
	// there, not here.
	ReadOnly bool
}

// Key describes one key of a consumer, never the key itself.
type Key struct {
	Slot string // primary or secondary
	// Fingerprint is a short prefix of the key's hash, to tell keys apart.
	Fingerprint string
	Created     time.Time
	CreatedBy   string
}

// ErrNotFound is returned by sources for an unknown name or version.
var ErrNotFound = errors.New("not found")

// InvalidError is a problem with what a person entered; its message is
// shown to them.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

// Audit searches the tamper-evident audit log.
type Audit interface {
	Search(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	// Verify checks the hash chain of the whole log.
	Verify(ctx context.Context) (ChainStatus, error)
}

// AuditQuery selects audit entries; zero fields match everything.
type AuditQuery struct {
	Actor  string // exact actor
	Action string // exact action, or a prefix ending in "." (key.)
	Since  time.Time
	Until  time.Time
	Limit  int
}

// AuditEntry is one audited event.
type AuditEntry struct {
	Seq    int64
	Time   time.Time
	Actor  string
	Action string // e.g. key.rotate, consumer.create, config.apply, login
	Target string
	Detail string
	Hash   string
}

// ChainStatus is the result of verifying the audit log's hash chain.
type ChainStatus struct {
	OK      bool
	Entries int64
	Checked time.Time
	// Problem says where the chain breaks, when it does.
	Problem string
}

// ConfigHistory lists applied configuration versions and their text.
type ConfigHistory interface {
	// Versions returns the versions, newest first.
	Versions(ctx context.Context) ([]ConfigVersion, error)
	// Text returns the YAML of a version.
	Text(ctx context.Context, id string) (string, error)
}

// ConfigVersion is one applied configuration.
type ConfigVersion struct {
	ID      string
	Applied time.Time
	// Source says where it came from: a file, the admin API (with who).
	Source  string
	Current bool
}

// Anomalies reads the callers the anomaly detector flagged.
type Anomalies interface {
	// Anomalies returns up to limit events, newest first, of one kind
	// ("" for all), with the counts since the gateway started. It returns
	// ErrNotConnected when there is no detector to read.
	Anomalies(ctx context.Context, kind string, limit int) (AnomalyReport, error)
}

// ErrNotConnected is returned by a source that has nothing to read from
// yet: its page shows as "not connected".
var ErrNotConnected = errors.New("not connected")

// AnomalyKinds are the kinds of anomaly, in the order the page lists them.
var AnomalyKinds = []string{"rate_spike", "auth_failures", "enumeration", "first_access"}

// AnomalyReport is what the anomalies page shows.
type AnomalyReport struct {
	// Enabled is whether the configuration being served detects
	// anomalies; events flagged before a reload turned it off remain.
	Enabled bool
	Events  []AnomalyEvent
	// Counts are the events flagged per kind since the gateway started.
	Counts map[string]int64
	// Callers is how many callers the detector follows now.
	Callers int
	// Dropped is how many events a full queue dropped.
	Dropped int64
}

// AnomalyEvent is one flagged anomaly.
type AnomalyEvent struct {
	Time time.Time
	// Kind is rate_spike, auth_failures, enumeration or first_access.
	Kind string
	// Caller is jwt:PROVIDER:SUBJECT, key:CONSUMER, mtls:SUBJECT or
	// ip:ADDRESS.
	Caller    string
	ClientIP  string
	API       string
	Operation string
	// Count is what was counted in the window; Baseline, for a rate
	// spike, the caller's usual requests per window.
	Count    int
	Baseline float64
	Detail   string
	// Action is logged or throttled; Until, when throttled, is when the
	// throttle ends.
	Action string
	Until  time.Time
}

// Suggestions reads the settings suggested from what the gateway
// observed of each operation's upstream exchanges: a request deadline per
// operation, a concurrency limit per backend.
type Suggestions interface {
	// Suggestions returns the suggestions for the configuration being
	// served, those that change something first. It returns
	// ErrNotConnected when there is nothing to read them from.
	// minSamples is the exchanges an operation needs before anything is
	// proposed for it (0: the default).
	Suggestions(ctx context.Context, minSamples uint64) (SuggestionReport, error)
}

// SuggestionActions are the actions a suggestion proposes, in the order
// the page lists them: raise, add and lower change a setting; keep says
// it fits; wait, that too little traffic was seen to say.
var SuggestionActions = []string{"raise", "add", "lower", "keep", "wait"}

// SuggestionReport is what the suggestions page shows.
type SuggestionReport struct {
	// Window is the span the statistics cover ("24h").
	Window string
	// MinSamples is how many upstream exchanges an operation needs before
	// anything is proposed for it.
	MinSamples uint64
	Items      []Suggestion
}

// Suggestion is one proposed setting, with what it rests on.
type Suggestion struct {
	// Kind is timeout (an operation's timeouts.request) or concurrency (a
	// backend's max_concurrent_requests).
	Kind string
	// Action is raise, add, lower, keep or wait.
	Action    string
	API       string
	Operation string
	Backend   string
	// Setting names the setting
	// (apis[orders].operations[getOrder].timeouts.request).
	Setting string
	// Path is where the patch goes (apis[0].operations[1]) and Line its
	// line in the configuration file (0: unknown).
	Path      string
	Line      int
	Current   string
	Suggested string
	Reason    string
	// Patch is the YAML to set at Path (empty for keep and wait).
	Patch string
	// The evidence, over the window: requests, those that ran out of
	// time, those the concurrency limit refused, those whose client gave
	// up before the backend answered, the busiest second,
	// the latency of the backend's answers, and (concurrency) the
	// requests estimated in flight at the busiest second.
	Requests, TimedOut, Limited, Abandoned, PeakRPS uint64
	P50ms, P99ms, P999ms                            float64
	InFlight                                        float64
}
