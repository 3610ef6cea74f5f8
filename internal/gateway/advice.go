package gateway

import (
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/advisor"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// opUpstream is what the suggestions need of an operation that calls its
// backend: its effective deadlines.
type opUpstream struct {
	timeouts   config.Timeouts
	attemptSet bool // upstream_attempt configured on the API or the operation
}

func (c *compiler) opUpstream(a *config.API, o *config.Operation) *opUpstream {
	var ot *config.UpstreamTimeouts
	if o != nil {
		ot = o.Timeouts
	}
	u := &opUpstream{timeouts: config.EffectiveTimeouts(a.Timeouts, ot)}
	for _, t := range []*config.UpstreamTimeouts{a.Timeouts, ot} {
		if t != nil && t.UpstreamAttempt.Set {
			u.attemptSet = true
		}
	}
	return u
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
	type backendInfo struct {
		path           string
		responseHeader time.Duration
	}
	backends := make(map[string]backendInfo, len(cfg.Backends))
	for i := range cfg.Backends {
		b := &cfg.Backends[i]
		p := config.Index("backends", i)
		backends[b.Name] = backendInfo{path: p, responseHeader: b.Timeouts.ResponseHeader.Or(config.DefaultResponseHeaderTime)}
		in.Backends = append(in.Backends, advisor.Backend{
			Name: b.Name, Path: p, Line: s.Doc.Pos(p).Line, MaxConcurrent: b.MaxConcurrentRequests,
		})
	}
	for _, op := range s.operations {
		u := op.upstream
		if u == nil {
			continue
		}
		b := backends[op.API.Backend]
		in.Operations = append(in.Operations, advisor.Operation{
			API: op.API.Name, Operation: op.Name, Backend: op.API.Backend,
			Path: op.ConfigPath, Line: s.Doc.Pos(op.ConfigPath).Line,
			Request: u.timeouts.Request, Attempt: u.timeouts.UpstreamAttempt, AttemptSet: u.attemptSet,
			ResponseHeader: b.responseHeader, BackendPath: b.path,
			Stats: op.stats.Upstream(),
		})
	}
	return in
}
