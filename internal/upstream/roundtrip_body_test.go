package upstream

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// strictConfig ejects an instance at its first failure and opens the
// breaker at the first failed request: whatever counts against the
// backend shows.
func strictConfig() *Config {
	cfg := retryConfig()
	cfg.Retry.NonIdempotent = true
	cfg.Outlier = &OutlierConfig{Consecutive5xx: 1, ConsecutiveConnect: 1, BaseEjection: time.Minute, MaxEjection: time.Minute, MaxEjectedPercent: 100}
	cfg.Breaker = &BreakerConfig{FailureRatio: 0.5, Window: 10 * time.Second, MinimumRequests: 1, OpenDuration: time.Minute, HalfOpenRequests: 1}
	return cfg
}

// slowBody is a client's body that comes one byte per gap.
type slowBody struct {
	n   int
	gap time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.gap)
	p[0] = 'x'
	b.n--
	return 1, nil
}

// bufferingTransport is what h1 does with a small body: it reads the
// whole body before it writes a byte to the backend, and the head
// deadline fails the write that comes after it; then the backend takes
// backendWait to answer.
type bufferingTransport struct{ backendWait time.Duration }

func (bufferingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("not used")
}

func (b bufferingTransport) RoundTripHeadDeadline(req *http.Request, _, deadline time.Time) (*http.Response, error) {
	if req.Body != nil {
		if _, err := io.ReadAll(req.Body); err != nil {
			return nil, err
		}
	}
	if !time.Now().Before(deadline) {
		return nil, &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	if time.Until(deadline) <= b.backendWait {
		time.Sleep(time.Until(deadline))
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	time.Sleep(b.backendWait)
	return respond(req, 200), nil
}

// checkCounted checks whether the exchange's failure counted against
// instance A and the backend: A ejected and the breaker open, or neither.
func checkCounted(t *testing.T, p *Pool, counted bool) {
	t.Helper()
	if ejected := status(t, p, instA).Ejected; ejected != counted {
		t.Errorf("instance ejected: %v, want %v", ejected, counted)
	}
	if open := p.Breaker().State() == BreakerOpen; open != counted {
		t.Errorf("breaker %s, want open: %v", p.Breaker().State(), counted)
	}
}

func TestRoundTripper_DeadlineWhileTheClientsBodyIsAwaitedIsNotTheBackends(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     *slowBody
		wait     time.Duration // the backend's, once it has the body
		wantKind ErrorKind
		counted  bool
	}{
		// 2s of body for a 1s deadline: the client's.
		{"slow_body", &slowBody{n: 20, gap: 100 * time.Millisecond}, 0, ErrRequestBodyTimeout, false},
		// The body in 0.5s, then a backend that does not answer: the
		// backend's.
		{"slow_backend", &slowBody{n: 5, gap: 100 * time.Millisecond}, 2 * time.Second, ErrTimeout, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newTestPool(t, strictConfig(), instA)
				rt, rec := newTestRoundTripper(p, bufferingTransport{backendWait: tc.wait}, ExchangeOptions{Request: 10 * time.Second, Attempt: time.Second})
				_, err := rt.RoundTrip(request(t, "PUT", tc.body))
				var ue *Error
				if !errors.As(err, &ue) || ue.Kind != tc.wantKind {
					t.Fatalf("error %v, want %s", err, tc.wantKind)
				}
				if rec.attempts != 1 {
					t.Errorf("%d attempts, want 1 (no retry)", rec.attempts)
				}
				checkCounted(t, p, tc.counted)
			})
		})
	}
}

// A transport that reads the body in a goroutine of its own (net/http's)
// is cut off by the deadline while a read of the client's body waits.
func TestRoundTripper_DeadlineDuringABlockedBodyReadIsNotTheBackends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(t, strictConfig(), instA)
		release := make(chan struct{})
		read := make(chan struct{})
		base := RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			go func() {
				defer close(read)
				io.ReadAll(req.Body)
			}()
			<-req.Context().Done() // the backend never answers
			return nil, req.Context().Err()
		})
		rt, _ := newTestRoundTripper(p, base, ExchangeOptions{Request: time.Second})
		body := io.MultiReader(strings.NewReader("some"), readerFunc(func([]byte) (int, error) {
			<-release // the rest never comes
			return 0, io.ErrUnexpectedEOF
		}))
		_, err := rt.RoundTrip(request(t, "POST", body))
		var ue *Error
		if !errors.As(err, &ue) || ue.Kind != ErrRequestBodyTimeout {
			t.Fatalf("error %v, want %s", err, ErrRequestBodyTimeout)
		}
		checkCounted(t, p, false)
		close(release)
		<-read
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
