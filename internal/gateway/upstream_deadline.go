package gateway

import (
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// RoundTripHeadDeadline implements upstream.HeadDeadliner when the
// wrapped transport does (the backend's own transport does for http://
// instances; a tracing wrapper does not), measuring the attempt as
// RoundTrip does.
func (t *timedTransport) RoundTripHeadDeadline(req *http.Request, deadline time.Time) (*http.Response, error) {
	hd, ok := t.rt.(upstream.HeadDeadliner)
	if !ok {
		return nil, upstream.ErrNoHeadDeadline
	}
	start := time.Now()
	res, err := hd.RoundTripHeadDeadline(req, deadline)
	if err == upstream.ErrNoHeadDeadline {
		return nil, err
	}
	d := time.Since(start)
	if x := policy.ExchangeFrom(req.Context()); x != nil && x.Record != nil {
		x.Record.UpstreamDuration += d
	}
	if t.metrics != nil {
		t.metrics.Observe(d.Seconds())
	}
	return res, err
}
