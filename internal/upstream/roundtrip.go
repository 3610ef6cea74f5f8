package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/h1"
)

// ExchangeOptions are the per-operation settings of a RoundTripper.
type ExchangeOptions struct {
	// Request bounds the whole exchange, retries included, until the
	// response headers arrive.
	Request time.Duration
	// Attempt bounds one attempt until its response headers arrive.
	Attempt time.Duration
	// Record, if set, is called once per exchange with the last instance
	// tried (empty if none) and the number of attempts, on the
	// goroutine that called RoundTrip.
	Record func(r *http.Request, instance string, attempts int)
}

// RoundTripper sends each request to an instance of a pool, applying the
// backend's concurrency limit, circuit breaker, balancer, per-attempt and
// overall deadlines, retries (with backoff, jitter and a budget), and
// reporting every attempt's outcome for passive ejection.
//
// Give it to httputil.ReverseProxy: the proxy's Rewrite sets the path and
// headers, and the RoundTripper sets the scheme and host of each attempt.
// It never modifies the request it is given.
type RoundTripper struct {
	pool *Pool
	base http.RoundTripper
	hd   HeadDeadliner // base, when it is one: asserted once, not per attempt
	opts ExchangeOptions
}

// NewRoundTripper returns a RoundTripper over pool that sends attempts
// with base.
func NewRoundTripper(pool *Pool, base http.RoundTripper, o ExchangeOptions) *RoundTripper {
	if o.Request <= 0 {
		o.Request = DefaultRequestTimeout
	}
	if o.Attempt <= 0 || o.Attempt > o.Request {
		o.Attempt = o.Request
	}
	hd, _ := base.(HeadDeadliner)
	return &RoundTripper{pool: pool, base: base, hd: hd, opts: o}
}

// DefaultRequestTimeout bounds an exchange whose options set no deadline.
const DefaultRequestTimeout = 30 * time.Second

var (
	errAttemptTimeout = errors.New("upstream attempt timed out")
	errRequestTimeout = errors.New("upstream request deadline exceeded")
)

// drainLimit is how much of a discarded response (one that is retried) is
// read so that its connection can be reused.
const drainLimit = 4 << 10

// RoundTrip implements http.RoundTripper.
func (t *RoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	p := t.pool
	cfg := p.cfg.Load()
	if len(p.view.Load().eligible) == 0 {
		t.record(req, "", 0)
		return nil, p.noInst
	}
	limited := cfg.MaxConcurrent > 0
	if limited && p.active.Add(1) > cfg.MaxConcurrent {
		p.active.Add(-1)
		t.record(req, "", 0)
		return nil, &Error{Kind: ErrConcurrencyLimit, Backend: p.name}
	}
	ticket, retryAfter, ok := p.breaker.Allow()
	if !ok {
		if limited {
			p.active.Add(-1)
		}
		t.record(req, "", 0)
		return nil, &Error{Kind: ErrCircuitOpen, Backend: p.name, RetryAfter: retryAfter}
	}
	// One reading of the clock for the budget, the request's deadline
	// and the first attempt's.
	now := time.Now()
	p.budget.Request(now)

	x := exchange{t: t, req: req, cfg: cfg, ticket: ticket, limited: limited, now: now}
	if cfg.Key != nil {
		x.key, x.hasKey = cfg.Key(req)
	}
	if req.Body != nil && req.Body != http.NoBody {
		x.src = req.Body
	}
	return x.run()
}

func (t *RoundTripper) record(req *http.Request, instance string, attempts int) {
	if t.opts.Record != nil {
		t.opts.Record(req, instance, attempts)
	}
}

// exchange is the state of one request across its attempts.
type exchange struct {
	t       *RoundTripper
	req     *http.Request
	cfg     *Config
	ticket  uint64
	limited bool
	now     time.Time // when the exchange began; its deadline is now plus the Request timeout
	key     uint64
	hasKey  bool
	src     io.ReadCloser // the request body, shared by the attempts
	tried   []*Endpoint
}

// attempt is one try on one endpoint. The outgoing request, its URL and
// the body handed on are in it: one allocation per attempt, not four.
type attempt struct {
	e        *Endpoint
	cancel   context.CancelCauseFunc
	body     *attemptBody
	timedOut bool // the attempt's or the request's deadline passed
	out      http.Request
	url      url.URL
	res      responseBody
}

func (x *exchange) run() (*http.Response, error) {
	p := x.t.pool
	retryable := x.cfg.Retry.MaxRetries > 0 && (Idempotent(x.req.Method) || x.cfg.Retry.NonIdempotent)
	for n := 1; ; n++ {
		e := p.Pick(x.key, x.hasKey, x.tried)
		if e == nil {
			// Every instance left rotation between two attempts.
			return x.fail(n-1, "", p.noInst, false)
		}
		// The time left of the Request timeout: all of it for the first
		// attempt, which starts at x.now (no time.Time arithmetic).
		now, remaining := x.now, x.t.opts.Request
		if n > 1 {
			now = time.Now()
			remaining -= now.Sub(x.now)
		}
		if remaining <= 0 {
			return x.fail(n-1, e.ID, &Error{Kind: ErrTimeout, Backend: p.name, Attempts: n - 1, Err: errRequestTimeout}, true)
		}
		a, res, err := x.send(e, now, remaining)
		outcome := x.classify(a, res, err)
		p.Report(e, outcome)
		p.obs.Attempt(outcome.String())

		if outcome == OutcomeCanceled || outcome == OutcomeBodyTimeout {
			// The client's doing: not retried (a body half read cannot
			// be sent again), and the breaker learns nothing.
			if res != nil {
				res.Body.Close()
			}
			a.finish(p)
			switch {
			case outcome == OutcomeBodyTimeout:
				err = &Error{Kind: ErrRequestBodyTimeout, Backend: p.name, Instance: e.ID, Attempts: n,
					Err: fmt.Errorf("%w while the client's request body was still awaited", err)}
			case err == nil:
				err = context.Cause(x.req.Context())
			}
			return x.fail(n, e.ID, err, false)
		}

		again := retryable && n <= x.cfg.Retry.MaxRetries && x.retryOn(outcome, res) &&
			(a.body == nil || a.body.detach())
		var wait time.Duration
		if again {
			wait = Backoff(n, x.cfg.Retry.BackoffBase, x.cfg.Retry.BackoffMax)
			switch {
			case wait >= x.t.opts.Request-time.Since(x.now): // the wait would end at or past the deadline
				p.obs.Retry("no_time")
				again = false
			case !p.budget.TryRetry():
				p.obs.Retry("budget_exhausted")
				again = false
			}
		}
		if !again {
			if res == nil {
				a.finish(p)
				return x.fail(n, e.ID, x.typed(outcome, e, n, err), true)
			}
			// The response goes to the client. The breaker judges it by
			// its status; the concurrency slot and the attempt end when
			// its body is closed.
			x.t.record(x.req, e.ID, n)
			p.breaker.Done(x.ticket, outcome.Failure())
			res.Body = a.wrap(p, res.Body, x.limited, res.StatusCode)
			return res, nil
		}
		if res != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, drainLimit))
			res.Body.Close()
		}
		a.finish(p)
		if wait > 0 {
			tm := time.NewTimer(wait)
			select {
			case <-x.req.Context().Done():
				tm.Stop()
				return x.fail(n, e.ID, context.Cause(x.req.Context()), false)
			case <-tm.C:
			}
		}
		p.obs.Retry("sent")
		x.tried = append(x.tried, e)
	}
}

// BodyReadLimiter is what a request's context answers BodyReadLimiterKey
// with when the server it came on can bound the reading of its body by a
// deadline of the caller's: the gateway's, over h1's server and Go's.
// Before each attempt that may read the body, the exchange calls
// LimitBodyRead with the attempt's deadline; the reading of the body is
// bounded by it as well as by the server's read timeout (never later).
// A client that stops sending its body then fails the attempt at its
// deadline (ErrRequestBodyTimeout) instead of holding the attempt, its
// backend connection and its concurrency slot until the server's read
// timeout.
type BodyReadLimiter interface {
	LimitBodyRead(deadline time.Time)
}

// BodyReadLimiterKeyType is the type of BodyReadLimiterKey.
type BodyReadLimiterKeyType struct{}

// BodyReadLimiterKey is the context key of a request's BodyReadLimiter.
var BodyReadLimiterKey BodyReadLimiterKeyType

// HeadDeadliner is a RoundTripper that can bound a round trip's wait for
// the response head by a deadline itself (h1 does it with the
// connection's deadlines), so that an attempt needs no context and no
// timer of its own. It returns ErrNoHeadDeadline, having done nothing,
// when it cannot for this request; the caller then bounds it with a
// context. now is a reading of the clock the caller has just made (the
// attempt's start), which the transport uses instead of reading it again.
type HeadDeadliner interface {
	RoundTripHeadDeadline(req *http.Request, now, deadline time.Time) (*http.Response, error)
}

// ErrNoHeadDeadline is what a HeadDeadliner returns for a request whose
// deadline it cannot enforce.
var ErrNoHeadDeadline = errors.New("upstream: transport cannot enforce a head deadline for this request")

// send makes one attempt on e, bounded by the attempt deadline and what
// remains of the request's.
func (x *exchange) send(e *Endpoint, now time.Time, remaining time.Duration) (*attempt, *http.Response, error) {
	d, cause := x.t.opts.Attempt, errAttemptTimeout
	if remaining <= d {
		d, cause = remaining, errRequestTimeout
	}
	// Counted before the attempt is built: an atomic operation waits for
	// the stores before it, and the request's copy below is many.
	e.inFlight.Add(1)
	a := &attempt{e: e, out: *x.req, url: *x.req.URL}
	out := &a.out
	a.url.Scheme, a.url.Host = e.Scheme, e.Host
	out.URL = &a.url
	deadline := now.Add(d)
	if x.src != nil {
		a.body = &attemptBody{src: x.src, deadline: deadline}
		out.Body = a.body
	}
	if hd := x.t.hd; hd != nil {
		// Such a transport reads the body on this goroutine, as it
		// writes it: a client that stops sending its body fails the
		// read at the attempt's deadline, not at the server's read
		// timeout, which would hold the backend's connection and the
		// concurrency slot until then.
		var limiter BodyReadLimiter
		if a.body != nil {
			limiter, _ = x.req.Context().Value(BodyReadLimiterKey).(BodyReadLimiter)
			if limiter != nil {
				limiter.LimitBodyRead(deadline)
				a.body.limited = true
			}
		}
		res, err := hd.RoundTripHeadDeadline(out, now, deadline)
		if err == ErrNoHeadDeadline && limiter != nil {
			limiter.LimitBodyRead(time.Time{}) // the server's bound alone
			a.body.limited = false
		}
		if err != ErrNoHeadDeadline {
			if err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)) &&
				!time.Now().Before(deadline) && x.req.Context().Err() == nil {
				a.timedOut, err = true, cause
			}
			return a, res, err
		}
	}
	// The base transport bounds nothing itself: a context per attempt,
	// cancelled at the deadline unless the response headers came first.
	// It may return then while a read of the body is under way in a
	// goroutine of its own.
	if a.body != nil {
		a.body.async = true
	}
	ctx, cancel := context.WithCancelCause(x.req.Context())
	a.cancel = cancel
	timer := time.AfterFunc(d, func() { cancel(cause) })
	out = out.WithContext(ctx)
	res, err := x.t.base.RoundTrip(out)
	if !timer.Stop() && x.req.Context().Err() == nil {
		// The deadline passed (perhaps just as the headers arrived: the
		// context is cancelled, so the body could not be read).
		a.timedOut = true
		if err == nil {
			res.Body.Close()
		}
		res, err = nil, context.Cause(ctx)
	}
	return a, res, err
}

// classify names the outcome of an attempt.
func (x *exchange) classify(a *attempt, res *http.Response, err error) Outcome {
	if a.body != nil && a.body.cut.Load() {
		// The read of the client's body ended at the deadline set for it
		// (Go's server cancels the request's context then, as if the
		// client had left).
		return OutcomeBodyTimeout
	}
	if x.req.Context().Err() != nil {
		return OutcomeCanceled
	}
	if err == nil {
		if res.StatusCode >= 500 {
			return Outcome5xx
		}
		return OutcomeSuccess
	}
	if a.timedOut {
		if a.body != nil && a.body.awaited() {
			// The deadline passed while the gateway waited for the
			// client's body, not for the backend.
			return OutcomeBodyTimeout
		}
		return OutcomeTimeout
	}
	if a.body != nil && a.body.failed() {
		return OutcomeCanceled // the client's body failed, not the backend
	}
	return classifyErr(err)
}

// classifyErr sorts a transport error.
func classifyErr(err error) Outcome {
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.As(err, &op) && op.Op == "dial", errors.Is(err, h1.ErrRequestNotSent):
		return OutcomeConnect
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF):
		// Refused, or closed or reset before a response began (a partial
		// response is io.ErrUnexpectedEOF and lands below).
		return OutcomeConnect
	case errors.As(err, &ne) && ne.Timeout():
		return OutcomeTimeout
	}
	return OutcomeError
}

// retryOn reports whether an attempt with this outcome may be retried.
func (x *exchange) retryOn(o Outcome, res *http.Response) bool {
	switch o {
	case OutcomeConnect:
		return true
	case Outcome5xx:
		return x.cfg.Retry.OnStatus.Has(res.StatusCode)
	}
	return false
}

// typed wraps the last attempt's error.
func (x *exchange) typed(o Outcome, e *Endpoint, n int, err error) error {
	kind := ErrTransport
	switch o {
	case OutcomeTimeout:
		kind = ErrTimeout
	case OutcomeConnect:
		kind = ErrConnect
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return &Error{Kind: kind, Backend: x.t.pool.name, Instance: e.ID, Attempts: n, Err: err}
}

// fail ends the exchange with err. With verdict, the breaker counts a
// failure; without, it learns nothing (the client left, or there was no
// instance to try).
func (x *exchange) fail(attempts int, instance string, err error, verdict bool) (*http.Response, error) {
	p := x.t.pool
	x.t.record(x.req, instance, attempts)
	if verdict {
		p.breaker.Done(x.ticket, true)
	} else {
		p.breaker.Abandon(x.ticket)
	}
	if x.limited {
		p.active.Add(-1)
	}
	return nil, err
}

// finish ends an attempt whose response is not handed on.
func (a *attempt) finish(p *Pool) {
	if a.cancel != nil {
		a.cancel(nil)
	}
	p.release(a.e)
}

// wrap hands on the response body; closing it ends the attempt and, with
// limited, frees the exchange's concurrency slot.
func (a *attempt) wrap(p *Pool, rc io.ReadCloser, limited bool, status int) io.ReadCloser {
	if rwc, ok := rc.(io.ReadWriteCloser); ok && status == http.StatusSwitchingProtocols {
		return &upgradeBody{responseBody: responseBody{rc: rc, pool: p, a: a, limited: limited}, w: rwc}
	}
	a.res = responseBody{rc: rc, pool: p, a: a, limited: limited}
	return &a.res
}

// responseBody is a backend's response body; closing it ends the attempt.
type responseBody struct {
	rc      io.ReadCloser
	pool    *Pool
	a       *attempt
	limited bool
	closed  atomic.Bool
}

func (b *responseBody) Read(p []byte) (int, error) { return b.rc.Read(p) }

func (b *responseBody) Close() error {
	err := b.rc.Close()
	if b.closed.CompareAndSwap(false, true) {
		b.a.finish(b.pool)
		if b.limited {
			b.pool.active.Add(-1)
		}
	}
	return err
}

// upgradeBody is the body of a 101 response: the proxy writes to it too.
type upgradeBody struct {
	responseBody
	w io.Writer
}

func (b *upgradeBody) Write(p []byte) (int, error) { return b.w.Write(p) }

// attemptBody lends the request body to one attempt. It records whether
// the attempt read any of it: a body of which not a byte was read can be
// given to the next attempt; once detached, the old attempt can read no
// more. Close does not close the body (the server does, after the
// handler).
//
// It also tells whether the attempt's deadline passed while the client's
// body was awaited (awaited): a read of it was under way then, or one
// ended after it. A transport may read a small body whole before it
// writes a byte to the backend (h1 does), or read it while it writes
// (net/http, in a goroutine of its own): either way, the time a slow
// client takes to send its body is not the backend's.
type attemptBody struct {
	src      io.ReadCloser
	deadline time.Time    // the attempt's
	state    atomic.Int32 // bodyUnread, bodyRead, bodyDetached
	err      atomic.Bool  // a read failed (not EOF)
	late     atomic.Bool  // a read of src ended at or after the deadline
	// limited: the reading of src is bounded by the deadline
	// (BodyReadLimiter); cut: a read of it failed at that deadline.
	limited bool
	cut     atomic.Bool
	// async: the transport may return while a read is under way (it
	// reads in a goroutine of its own), so reading says when one is. Set
	// before the round trip; a transport that reads on the round trip's
	// goroutine (h1) is spared the two atomic stores per read.
	async   bool
	reading atomic.Bool // a read of src is under way (async only)
	ended   bool        // src returned io.EOF (only the reading goroutine uses it)
}

const (
	bodyUnread int32 = iota
	bodyRead
	bodyDetached
)

var errBodyDetached = errors.New("request body handed to another attempt")

func (b *attemptBody) Read(p []byte) (int, error) {
	if !b.state.CompareAndSwap(bodyUnread, bodyRead) && b.state.Load() == bodyDetached {
		return 0, errBodyDetached
	}
	if b.ended {
		return b.src.Read(p)
	}
	if b.async {
		b.reading.Store(true)
	}
	n, err := b.src.Read(p)
	if b.async {
		b.reading.Store(false)
	}
	if !time.Now().Before(b.deadline) {
		b.late.Store(true)
		if b.limited && err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			b.cut.Store(true)
		}
	}
	switch {
	case err == io.EOF:
		b.ended = true
	case err != nil:
		b.err.Store(true)
	}
	return n, err
}

// awaited reports whether the attempt's deadline passed while the
// client's body was awaited: a read is under way (a transport that reads
// the body in a goroutine of its own, cut off by the deadline), or one
// ended at or after the deadline (a transport that noticed the deadline
// only when it next wrote to the backend). A deadline that passed while
// the backend was written to (a backend that does not read) or
// answered is the backend's.
func (b *attemptBody) awaited() bool { return b.reading.Load() || b.late.Load() }

func (b *attemptBody) Close() error { return nil }

// EndedByClientBody reports whether req, an attempt's request as the
// exchange hands it to its transport, was held up by the client's body:
// the deadline passed while the body was awaited (a 408), or reading it
// failed (the client left in the middle of it). The attempt's time was
// then the client's, not the backend's; a timing wrapper around the
// transport asks after an attempt that failed, so as not to count that
// time as the backend's latency.
func EndedByClientBody(req *http.Request) bool {
	b, ok := req.Body.(*attemptBody)
	return ok && (b.cut.Load() || b.awaited() || b.failed())
}

// detach takes the body back for another attempt; it fails if any of it
// was read.
func (b *attemptBody) detach() bool {
	return b.state.CompareAndSwap(bodyUnread, bodyDetached)
}

func (b *attemptBody) failed() bool { return b.err.Load() }
