package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// In-memory sources: the audit log, consumers and configuration history
// as `gatehouse dev` and the tests use them. They keep nothing across
// restarts.

// MemoryAudit is an in-memory audit log with a SHA-256 hash chain: each
// entry's hash covers the previous entry's hash and its own fields, so
// that changing or removing an entry breaks the chain from there on.
type MemoryAudit struct {
	now func() time.Time
	max int

	mu      sync.Mutex
	entries []AuditEntry
	anchor  string // hash before the first kept entry
	seq     int64
}

// NewMemoryAudit returns an empty log keeping at most max entries (the
// oldest are dropped past it; 0 means 10000); now is the clock.
func NewMemoryAudit(now func() time.Time, max int) *MemoryAudit {
	if now == nil {
		now = time.Now
	}
	if max <= 0 {
		max = 10000
	}
	return &MemoryAudit{now: now, max: max, anchor: strings.Repeat("0", 64)}
}

func entryHash(prev string, e *AuditEntry) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%d\n%s\n%q\n%q\n%q\n%q", prev, e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.Target, e.Detail)
	return hex.EncodeToString(h.Sum(nil))
}

// Append records an event. An outcome other than success leads its
// detail, as the store-backed audit page shows it.
func (a *MemoryAudit) Append(actor, action, target, outcome, detail string) {
	switch {
	case outcome == "" || outcome == "success":
	case detail == "":
		detail = outcome
	default:
		detail = outcome + "; " + detail
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	e := AuditEntry{Seq: a.seq, Time: a.now().UTC(), Actor: actor, Action: action, Target: target, Detail: detail}
	prev := a.anchor
	if n := len(a.entries); n > 0 {
		prev = a.entries[n-1].Hash
	}
	e.Hash = entryHash(prev, &e)
	a.entries = append(a.entries, e)
	if len(a.entries) > a.max {
		a.anchor = a.entries[0].Hash
		a.entries = slices.Delete(a.entries, 0, 1)
	}
}

// Tamper changes an entry's detail without fixing the chain (tests).
func (a *MemoryAudit) Tamper(seq int64, detail string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.entries {
		if a.entries[i].Seq == seq {
			a.entries[i].Detail = detail
		}
	}
}

// Search returns matching entries, newest first.
func (a *MemoryAudit) Search(_ context.Context, q AuditQuery) ([]AuditEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	limit := q.Limit
	if limit <= 0 {
		limit = 200
	}
	var out []AuditEntry
	for i := len(a.entries) - 1; i >= 0 && len(out) < limit; i-- {
		e := a.entries[i]
		if q.Actor != "" && e.Actor != q.Actor {
			continue
		}
		if q.Action != "" && e.Action != q.Action && !(strings.HasSuffix(q.Action, ".") && strings.HasPrefix(e.Action, q.Action)) {
			continue
		}
		if !q.Since.IsZero() && e.Time.Before(q.Since) {
			continue
		}
		if !q.Until.IsZero() && e.Time.After(q.Until) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// Verify recomputes the chain.
func (a *MemoryAudit) Verify(context.Context) (ChainStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := ChainStatus{OK: true, Entries: int64(len(a.entries)), Checked: a.now().UTC()}
	prev := a.anchor
	for i := range a.entries {
		e := &a.entries[i]
		if entryHash(prev, e) != e.Hash {
			st.OK = false
			st.Problem = fmt.Sprintf("entry %d does not match its hash: it was changed after it was written", e.Seq)
			return st, nil
		}
		prev = e.Hash
	}
	return st, nil
}

// MemoryConsumers keeps consumers and key hashes in memory. Keys created
// here are not known to the gateway's request path: it is the store's
// stand-in for development and tests.
type MemoryConsumers struct {
	now   func() time.Time
	audit *MemoryAudit

	mu        sync.Mutex
	consumers map[string]*Consumer
}

// NewMemoryConsumers returns an empty set; changes are appended to audit
// when it is not nil.
func NewMemoryConsumers(now func() time.Time, audit *MemoryAudit) *MemoryConsumers {
	if now == nil {
		now = time.Now
	}
	return &MemoryConsumers{now: now, audit: audit, consumers: map[string]*Consumer{}}
}

// Seed adds a consumer as is (e.g. one from the configuration file).
func (m *MemoryConsumers) Seed(c Consumer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.consumers[c.Name] = &c
}

var consumerNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// List returns every consumer, by name.
func (m *MemoryConsumers) List(context.Context) ([]Consumer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Consumer, 0, len(m.consumers))
	for _, c := range m.consumers {
		cc := *c
		cc.Keys = slices.Clone(c.Keys)
		out = append(out, cc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *MemoryConsumers) newKey(slot, actor string) (string, Key, error) {
	key, err := identity.GenerateKey()
	if err != nil {
		return "", Key{}, err
	}
	return key, Key{Slot: slot, Fingerprint: identity.HashKey(key).String()[:12], Created: m.now().UTC(), CreatedBy: actor}, nil
}

// Create makes a consumer with a primary key.
func (m *MemoryConsumers) Create(_ context.Context, actor string, nc NewConsumer) (string, error) {
	if !consumerNameRE.MatchString(nc.Name) {
		return "", &InvalidError{Msg: "A name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."}
	}
	key, k, err := m.newKey("primary", actor)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	if _, dup := m.consumers[nc.Name]; dup {
		m.mu.Unlock()
		return "", &InvalidError{Msg: fmt.Sprintf("A consumer named %q already exists.", nc.Name)}
	}
	m.consumers[nc.Name] = &Consumer{Name: nc.Name, Groups: nc.Groups, Scopes: nc.Scopes, Keys: []Key{k}, Created: k.Created}
	m.mu.Unlock()
	m.record(actor, "consumer.create", nc.Name, "primary key "+k.Fingerprint)
	return key, nil
}

func (m *MemoryConsumers) editable(name string) (*Consumer, error) {
	c := m.consumers[name]
	if c == nil {
		return nil, ErrNotFound
	}
	if c.ReadOnly {
		return nil, &InvalidError{Msg: fmt.Sprintf("%s is defined in the configuration file; change its keys there.", name)}
	}
	return c, nil
}

func validSlot(slot string) error {
	if slot != "primary" && slot != "secondary" {
		return &InvalidError{Msg: "The key slot is primary or secondary."}
	}
	return nil
}

// Rotate replaces the key in slot (creating it when empty).
func (m *MemoryConsumers) Rotate(_ context.Context, actor, name, slot string) (string, error) {
	if err := validSlot(slot); err != nil {
		return "", err
	}
	key, k, err := m.newKey(slot, actor)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	c, err := m.editable(name)
	if err != nil {
		m.mu.Unlock()
		return "", err
	}
	old := ""
	c.Keys = slices.DeleteFunc(c.Keys, func(x Key) bool {
		if x.Slot == slot {
			old = x.Fingerprint
			return true
		}
		return false
	})
	c.Keys = append(c.Keys, k)
	sort.Slice(c.Keys, func(i, j int) bool { return c.Keys[i].Slot < c.Keys[j].Slot })
	m.mu.Unlock()
	detail := slot + " key " + k.Fingerprint
	if old != "" {
		detail += " replaces " + old
	}
	m.record(actor, "key.rotate", name, detail)
	return key, nil
}

// Revoke removes the key in slot.
func (m *MemoryConsumers) Revoke(_ context.Context, actor, name, slot string) error {
	if err := validSlot(slot); err != nil {
		return err
	}
	m.mu.Lock()
	c, err := m.editable(name)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	old := ""
	c.Keys = slices.DeleteFunc(c.Keys, func(x Key) bool {
		if x.Slot == slot {
			old = x.Fingerprint
			return true
		}
		return false
	})
	m.mu.Unlock()
	if old == "" {
		return &InvalidError{Msg: fmt.Sprintf("%s has no %s key.", name, slot)}
	}
	m.record(actor, "key.revoke", name, slot+" key "+old)
	return nil
}

func (m *MemoryConsumers) record(actor, action, target, detail string) {
	if m.audit != nil {
		m.audit.Append(actor, action, target, "", detail)
	}
}

// MemoryHistory keeps the last configuration versions applied, with their
// text.
type MemoryHistory struct {
	max int

	mu       sync.Mutex
	versions []ConfigVersion // oldest first
	texts    map[string]string
}

// NewMemoryHistory keeps at most max versions (0 means 50).
func NewMemoryHistory(max int) *MemoryHistory {
	if max <= 0 {
		max = 50
	}
	return &MemoryHistory{max: max, texts: map[string]string{}}
}

// Record notes that version id was applied. Applying the current version
// again records nothing.
func (h *MemoryHistory) Record(id, text, source string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.versions); n > 0 && h.versions[n-1].ID == id {
		return
	}
	h.versions = append(h.versions, ConfigVersion{ID: id, Applied: at.UTC(), Source: source})
	h.texts[id] = text
	if len(h.versions) > h.max {
		old := h.versions[0]
		h.versions = slices.Delete(h.versions, 0, 1)
		if !slices.ContainsFunc(h.versions, func(v ConfigVersion) bool { return v.ID == old.ID }) {
			delete(h.texts, old.ID)
		}
	}
}

// Versions returns the versions, newest first.
func (h *MemoryHistory) Versions(context.Context) ([]ConfigVersion, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]ConfigVersion, len(h.versions))
	for i, v := range h.versions {
		out[len(out)-1-i] = v
	}
	if len(out) > 0 {
		out[0].Current = true
	}
	return out, nil
}

// Text returns the YAML of a version.
func (h *MemoryHistory) Text(_ context.Context, id string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.texts[id]
	if !ok {
		return "", ErrNotFound
	}
	return t, nil
}

// MemoryAnomalies keeps flagged anomalies in memory, as the anomaly
// detector does: the latest events and the counts per kind since start.
type MemoryAnomalies struct {
	max int

	mu      sync.Mutex
	events  []AnomalyEvent // oldest first
	counts  map[string]int64
	enabled bool
	callers int
	dropped int64
}

// NewMemoryAnomalies returns an empty source, with detection on, keeping
// the latest max events (0 means 500).
func NewMemoryAnomalies(max int) *MemoryAnomalies {
	if max <= 0 {
		max = 500
	}
	m := &MemoryAnomalies{max: max, counts: map[string]int64{}, enabled: true}
	for _, k := range AnomalyKinds {
		m.counts[k] = 0
	}
	return m
}

// Add records an event.
func (m *MemoryAnomalies) Add(e AnomalyEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	if len(m.events) > m.max {
		m.events = slices.Delete(m.events, 0, 1)
	}
	m.counts[e.Kind]++
}

// SetEnabled says whether detection is on in the configuration.
func (m *MemoryAnomalies) SetEnabled(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enabled = on
}

// SetStats sets the callers followed and the events dropped.
func (m *MemoryAnomalies) SetStats(callers int, dropped int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.callers, m.dropped = callers, dropped
}

// Anomalies returns up to limit events of kind ("" for all), newest
// first, and the counts.
func (m *MemoryAnomalies) Anomalies(_ context.Context, kind string, limit int) (AnomalyReport, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rep := AnomalyReport{Enabled: m.enabled, Counts: make(map[string]int64, len(m.counts)), Callers: m.callers, Dropped: m.dropped}
	for k, n := range m.counts {
		rep.Counts[k] = n
	}
	for i := len(m.events) - 1; i >= 0 && len(rep.Events) < limit; i-- {
		if e := m.events[i]; kind == "" || e.Kind == kind {
			rep.Events = append(rep.Events, e)
		}
	}
	return rep, nil
}
