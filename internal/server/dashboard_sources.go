package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/admin"
	"github.com/gatehouse-dev/gatehouse/internal/advisor"
	"github.com/gatehouse-dev/gatehouse/internal/anomaly"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/dashboard"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/registry"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// The dashboard's sources over the server's real state: the store, the
// admin API's consumer operations, the upstream pools, the registry, the
// anomaly detector and the suggestions from the upstream statistics.

// dashboardSources fills the sources an ObserveOptions leaves unset.
func (s *Server) dashboardSources(o ObserveOptions) ObserveOptions {
	if o.Anomalies == nil {
		o.Anomalies = anomalySource{
			detector: func() *anomaly.Detector { return s.gw.Runtime().Anomalies },
			snapshot: s.gw.Snapshot,
		}
	}
	if o.Suggestions == nil {
		o.Suggestions = suggestionSource{snapshot: s.gw.Snapshot}
	}
	st := s.state
	if st == nil {
		return o
	}
	if o.Backends == nil {
		o.Backends = backendSource{snapshot: s.gw.Snapshot, pools: s.gw.Runtime().Upstreams, registry: st.registry}
	}
	if o.Consumers == nil {
		o.Consumers = consumerSource{api: s.adminAPI(), store: st.store, snapshot: s.gw.Snapshot}
	}
	if o.Audit == nil {
		o.Audit = auditSource{log: st.store}
	}
	if o.History == nil {
		o.History = historySource{store: st.store, snapshot: s.gw.Snapshot}
	}
	if o.Recorder == nil {
		o.Recorder = auditRecorder{rec: st.audit}
	}
	return o
}

// backendSource shows each configured backend's pool: health, ejection,
// breaker, weight, where each instance came from, and the registration
// metadata of registered ones.
type backendSource struct {
	snapshot func() *gateway.Snapshot
	pools    *upstream.Pools
	registry *registry.Registry
}

func (b backendSource) Backends(ctx context.Context) ([]dashboard.Backend, error) {
	snap := b.snapshot()
	if snap == nil || b.pools == nil {
		return nil, nil
	}
	var out []dashboard.Backend
	for _, cb := range snap.Doc.Config.Backends {
		pool, ok := b.pools.Lookup(cb.Name)
		if !ok {
			continue
		}
		meta := map[string]map[string]string{}
		if cb.Registry != nil && b.registry != nil {
			for _, in := range b.registry.Current(cb.Registry.Service).Instances {
				m := map[string]string{}
				for k, v := range in.Metadata {
					m[k] = v
				}
				if in.Zone != "" {
					m["zone"] = in.Zone
				}
				m["registered_by"] = in.Actor
				meta[in.Scheme+"://"+in.ID] = m
			}
		}
		breaker := ""
		if pool.Config() != nil && pool.Config().Breaker != nil {
			breaker = pool.Breaker().State().String()
		}
		be := dashboard.Backend{Name: cb.Name}
		for _, is := range pool.Instances() {
			in := dashboard.Instance{
				URL: is.ID, Weight: is.Weight, Breaker: breaker,
				Metadata: meta[is.ID], LastError: is.LastError, LastErrorAt: is.LastErrorAt,
			}
			switch {
			case is.Draining:
				in.Health = "draining"
			case is.Ejected:
				in.Health = "ejected until " + is.EjectedUntil.UTC().Format(time.TimeOnly)
			case !is.Healthy:
				in.Health = "unhealthy"
			case cb.HealthCheck != nil:
				in.Health = "healthy"
			default:
				in.Health = "unknown"
			}
			in.Source = "static"
			if slices.Contains(is.Sources, gateway.RegistrySource) {
				in.Source = "registered"
			}
			be.Instances = append(be.Instances, in)
		}
		out = append(out, be)
	}
	return out, nil
}

// consumerSource lists consumers from the configuration (read-only) and
// the store, and changes store consumers through the admin API's
// operations, so that the dashboard audits and applies them exactly as
// the API does.
type consumerSource struct {
	api      *admin.API
	store    store.Store
	snapshot func() *gateway.Snapshot
}

func (c consumerSource) List(ctx context.Context) ([]dashboard.Consumer, error) {
	var out []dashboard.Consumer
	if snap := c.snapshot(); snap != nil {
		for _, cc := range snap.Doc.Config.Consumers {
			dc := dashboard.Consumer{Name: cc.Name, Groups: cc.Groups, Scopes: cc.Scopes, ReadOnly: true}
			if cc.Keys.Primary != nil {
				dc.Keys = append(dc.Keys, dashboard.Key{Slot: store.SlotPrimary, Fingerprint: "(configuration)"})
			}
			if cc.Keys.Secondary != nil {
				dc.Keys = append(dc.Keys, dashboard.Key{Slot: store.SlotSecondary, Fingerprint: "(configuration)"})
			}
			out = append(out, dc)
		}
	}
	cons, err := c.store.ListConsumers(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := c.store.ListKeys(ctx, "")
	if err != nil {
		return nil, err
	}
	byConsumer := map[string][]dashboard.Key{}
	for _, k := range keys {
		byConsumer[k.Consumer] = append(byConsumer[k.Consumer], dashboard.Key{
			Slot: k.Slot, Fingerprint: fmt.Sprintf("%x", k.Hash[:6]), Created: k.Created,
		})
	}
	for _, sc := range cons {
		out = append(out, dashboard.Consumer{Name: sc.Name, Groups: sc.Groups, Scopes: sc.Scopes,
			Keys: byConsumer[sc.Name], Created: sc.Created})
	}
	return out, nil
}

func (c consumerSource) Create(ctx context.Context, actor string, nc dashboard.NewConsumer) (string, error) {
	_, keys, err := c.api.CreateConsumer(ctx, actor, admin.NewConsumer{Name: nc.Name, Groups: nc.Groups, Scopes: nc.Scopes})
	if err != nil {
		return "", dashboardError(err)
	}
	return keys[store.SlotPrimary], nil
}

func (c consumerSource) Rotate(ctx context.Context, actor, consumer, slot string) (string, error) {
	key, _, err := c.api.RotateKey(ctx, actor, consumer, slot)
	return key, dashboardError(err)
}

func (c consumerSource) Revoke(ctx context.Context, actor, consumer, slot string) error {
	return dashboardError(c.api.RevokeKey(ctx, actor, consumer, slot))
}

// dashboardError turns an admin operation's error into the dashboard's
// kinds: a mistake the person can fix, a missing thing, or a failure.
func dashboardError(err error) error {
	if err == nil {
		return nil
	}
	detail, notFound, user := admin.ErrorDetail(err)
	switch {
	case notFound:
		return fmt.Errorf("%s: %w", detail, dashboard.ErrNotFound)
	case user:
		return &dashboard.InvalidError{Msg: detail}
	}
	return err
}

// auditSource searches the store's audit log and verifies its chain.
type auditSource struct {
	log store.AuditLog
}

// auditScan bounds how many records one search reads, newest last.
const auditScan = 100_000

func (a auditSource) Search(ctx context.Context, q dashboard.AuditQuery) ([]dashboard.AuditEntry, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 200
	}
	// Records come oldest first in pages; keep the newest matches.
	var matches []dashboard.AuditEntry
	var after int64
	for read := 0; read < auditScan; {
		page, err := a.log.ListAudit(ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		read += len(page)
		for _, r := range page {
			after = r.Seq
			if !auditMatch(q, r) {
				continue
			}
			matches = append(matches, dashboard.AuditEntry{Seq: r.Seq, Time: r.Time, Actor: r.Actor,
				Action: r.Action, Target: r.Target, Detail: auditDetail(r), Hash: r.Hash})
			if len(matches) > limit {
				matches = matches[1:]
			}
		}
	}
	slices.Reverse(matches)
	return matches, nil
}

func auditMatch(q dashboard.AuditQuery, r store.AuditRecord) bool {
	switch {
	case q.Actor != "" && r.Actor != q.Actor:
		return false
	case q.Action != "" && !(r.Action == q.Action || strings.HasSuffix(q.Action, ".") && strings.HasPrefix(r.Action, q.Action)):
		return false
	case !q.Since.IsZero() && r.Time.Before(q.Since):
		return false
	case !q.Until.IsZero() && r.Time.After(q.Until):
		return false
	}
	return true
}

func auditDetail(r store.AuditRecord) string {
	parts := []string{}
	if r.Outcome != "" && r.Outcome != store.OutcomeSuccess {
		parts = append(parts, r.Outcome)
	}
	if r.Detail != "" {
		parts = append(parts, r.Detail)
	}
	if r.Before != "" && r.Before != "null" {
		parts = append(parts, "before "+r.Before)
	}
	if r.After != "" && r.After != "null" {
		parts = append(parts, "after "+r.After)
	}
	return strings.Join(parts, "; ")
}

func (a auditSource) Verify(ctx context.Context) (dashboard.ChainStatus, error) {
	res, err := audit.Verify(ctx, a.log, nil)
	if err != nil {
		return dashboard.ChainStatus{}, err
	}
	cs := dashboard.ChainStatus{OK: res.Problem == nil, Entries: int64(res.Records), Checked: time.Now()}
	if res.Problem != nil {
		cs.Problem = fmt.Sprintf("record %d: %s", res.Problem.Seq, res.Problem.Msg)
	}
	return cs, nil
}

// historySource lists the configurations the store recorded as loaded,
// with their text.
type historySource struct {
	store    store.ConfigRevisions
	snapshot func() *gateway.Snapshot
}

func (h historySource) Versions(ctx context.Context) ([]dashboard.ConfigVersion, error) {
	revs, err := h.store.ListConfigRevisions(ctx, 200)
	if err != nil {
		return nil, err
	}
	current := ""
	if snap := h.snapshot(); snap != nil {
		current = snap.Version
	}
	var out []dashboard.ConfigVersion
	seen := map[string]bool{}
	for _, r := range revs {
		// A version loaded again (a reload of the same file) is listed once,
		// at its latest load.
		if seen[r.Version] {
			continue
		}
		seen[r.Version] = true
		src := r.Source
		if r.Actor != "" && r.Actor != audit.ActorSystem {
			src += " by " + r.Actor
		}
		out = append(out, dashboard.ConfigVersion{ID: r.Version, Applied: r.Time, Source: src, Current: r.Version == current})
	}
	return out, nil
}

func (h historySource) Text(ctx context.Context, id string) (string, error) {
	text, err := h.store.ConfigText(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", dashboard.ErrNotFound
	}
	return text, err
}

// auditRecorder writes the dashboard's events (sign-ins) to the audit log.
type auditRecorder struct{ rec *audit.Recorder }

// Append records an event; the dashboard's outcomes are the audit log's
// ("" is a success).
func (r auditRecorder) Append(actor, action, target, outcome, detail string) {
	r.rec.Record(context.Background(), audit.Entry{Actor: actor, Action: action, Target: target, Outcome: outcome, Detail: detail})
}

// anomalySource reads the runtime's anomaly detector. It looks the
// detector up at each call: the server makes it when its state opens.
type anomalySource struct {
	detector func() *anomaly.Detector
	snapshot func() *gateway.Snapshot
}

func (a anomalySource) Anomalies(_ context.Context, kind string, limit int) (dashboard.AnomalyReport, error) {
	d := a.detector()
	if d == nil {
		return dashboard.AnomalyReport{}, dashboard.ErrNotConnected
	}
	snap := a.snapshot()
	rep := dashboard.AnomalyReport{Enabled: snap != nil && snap.AnomaliesEnabled(), Counts: map[string]int64{},
		Callers: d.Callers(), Dropped: d.Dropped()}
	for k, n := range d.Counts() {
		rep.Counts[string(k)] = n
	}
	for _, e := range d.Recent(max(limit, 0), anomaly.Kind(kind)) {
		rep.Events = append(rep.Events, dashboard.AnomalyEvent{
			Time: e.Time, Kind: string(e.Kind), Caller: e.Caller, ClientIP: e.ClientIP, API: e.API, Operation: e.Operation,
			Count: e.Count, Baseline: e.Baseline, Detail: e.Detail, Action: e.Action, Until: e.Until,
		})
	}
	return rep, nil
}

// suggestionSource applies the suggestions' rules (package advisor) to
// the configuration being served and the runtime's upstream statistics,
// as GET /v1/suggestions does with its default options.
type suggestionSource struct {
	snapshot func() *gateway.Snapshot
}

func (a suggestionSource) Suggestions(_ context.Context, minSamples uint64) (dashboard.SuggestionReport, error) {
	snap := a.snapshot()
	if snap == nil {
		return dashboard.SuggestionReport{}, dashboard.ErrNotConnected
	}
	rep := advisor.Advise(snap.AdvisorInput(), advisor.Options{MinSamples: minSamples})
	out := dashboard.SuggestionReport{Window: rep.Window, MinSamples: rep.MinSamples,
		Items: make([]dashboard.Suggestion, 0, len(rep.Suggestions))}
	for _, s := range rep.Suggestions {
		e := &s.Evidence
		out.Items = append(out.Items, dashboard.Suggestion{
			Kind: s.Kind, Action: s.Action, API: s.API, Operation: s.Operation, Backend: s.Backend,
			Setting: s.Setting, Path: s.Path, Line: s.Line, Current: s.Current, Suggested: s.Suggested,
			Reason: s.Reason, Patch: s.Patch,
			Requests: e.Requests, TimedOut: e.TimedOut, Limited: e.Limited, Abandoned: e.Abandoned, PeakRPS: e.PeakRPS,
			P50ms: e.P50ms, P99ms: e.P99ms, P999ms: e.P999ms, InFlight: e.InFlight,
		})
	}
	return out, nil
}
