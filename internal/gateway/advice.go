package gateway

import (
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/advisor"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// opUpstream is what the suggestions need of an operation that calls its
// backend: its effective deadlines, and its backend's retries and
// concurrency limit.
type opUpstream struct {
	timeouts       config.Timeouts
	attemptSet     bool // upstream_attempt configured on the API or the operation
	responseHeader time.Duration
	maxRetries     int
	backoffBase    time.Duration
	backoffMax     time.Duration
	maxConcurrent  int
	backendIndex   int
}

func (c *compiler) opUpstream(a *config.API, o *config.Operation) *opUpstream {
	var ot *config.UpstreamTimeouts
	if o != nil {
		ot = o.Timeouts
	}
	u := &opUpstream{timeouts: config.EffectiveTimeouts(a.Timeouts, ot), backendIndex: -1,
		responseHeader: config.DefaultResponseHeaderTime, maxRetries: config.DefaultMaxRetries,
		backoffBase: config.DefaultRetryBackoffBase, backoffMax: config.DefaultRetryBackoffMax}
	for _, t := range []*config.UpstreamTimeouts{a.Timeouts, ot} {
		if t != nil && t.UpstreamAttempt.Set {
			u.attemptSet = true
		}
	}
	for i := range c.cfg.Backends {
		b := &c.cfg.Backends[i]
		if b.Name != a.Backend {
			continue
		}
		u.backendIndex = i
		u.responseHeader = b.Timeouts.ResponseHeader.Or(config.DefaultResponseHeaderTime)
		u.maxConcurrent = b.MaxConcurrentRequests
		if r := b.Retries; r != nil {
			if r.MaxRetries != nil {
				u.maxRetries = *r.MaxRetries
			}
			u.backoffBase = r.Backoff.Base.Or(config.DefaultRetryBackoffBase)
			u.backoffMax = r.Backoff.Max.Or(config.DefaultRetryBackoffMax)
		}
		break
	}
	return u
}

// deadline is the deadline a single slow answer of the operation meets.
func (u *opUpstream) deadline() time.Duration {
	return min(u.timeouts.Request, u.timeouts.UpstreamAttempt, u.responseHeader)
}

// commitUpstreamSettings tells each operation's statistics, once the
// snapshot is served, the deadline and limit its timeouts and refusals
// are now judged against.
func (c *compiler) commitUpstreamSettings() {
	ops := c.snap.operations
	c.onCommit(func() {
		for _, op := range ops {
			if u := op.upstream; u != nil {
				op.stats.SetUpstreamSettings(u.deadline(), u.maxConcurrent)
			}
		}
	})
}

// AdvisorInput gathers what the suggestions (package advisor) read: each
// operation that calls a backend, with its effective deadlines and its
// last day of upstream statistics, and each backend's concurrency limit.
// The statistics live on the runtime, so they span reloads.
func (s *Snapshot) AdvisorInput() advisor.Input {
	var in advisor.Input
	if s.Doc == nil || s.Doc.Config == nil {
		return in
	}
	cfg := s.Doc.Config
	for i := range cfg.Backends {
		b := &cfg.Backends[i]
		p := config.Index("backends", i)
		in.Backends = append(in.Backends, advisor.Backend{
			Name: b.Name, Path: p, Line: s.Doc.Pos(p).Line, MaxConcurrent: b.MaxConcurrentRequests,
		})
	}
	for _, op := range s.operations {
		u := op.upstream
		if u == nil {
			continue
		}
		ao := advisor.Operation{
			API: op.API.Name, Operation: op.Name, Backend: op.API.Backend,
			Path: op.ConfigPath, Line: s.Doc.Pos(op.ConfigPath).Line,
			Request: u.timeouts.Request, Attempt: u.timeouts.UpstreamAttempt, AttemptSet: u.attemptSet,
			ResponseHeader: u.responseHeader,
			MaxRetries:     u.maxRetries, BackoffBase: u.backoffBase, BackoffMax: u.backoffMax,
			Stats: op.stats.Upstream(),
		}
		if u.backendIndex >= 0 {
			ao.BackendPath = config.Index("backends", u.backendIndex)
			ao.BackendLine = s.Doc.Pos(ao.BackendPath).Line
		}
		in.Operations = append(in.Operations, ao)
	}
	return in
}
