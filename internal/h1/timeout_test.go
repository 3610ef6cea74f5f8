package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Timeouts and shutdown are tested in a synctest bubble over net.Pipe
// connections: deadlines follow the bubble's fake clock, so the tests
// neither sleep nor race.

type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return fakeAddr("pipe") }

// dial returns the client end of a new connection.
func (l *pipeListener) dial(t *testing.T) (net.Conn, *bufio.Reader) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
	case <-l.done:
		t.Fatal("listener closed")
	}
	t.Cleanup(func() { client.Close() })
	return client, bufio.NewReader(client)
}

// servePipe starts s on a pipe listener; the server is closed at the end
// of the test, before the bubble ends.
func servePipe(t *testing.T, s *Server) *pipeListener {
	ln := newPipeListener()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return ln
}

// closed reports whether the server closed the client's connection.
func closed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	c.SetReadDeadline(time.Time{})
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe)
}

func writeAsync(c net.Conn, s string) {
	go func() { io.WriteString(c, s) }()
}

func TestServer_ReadHeaderTimeoutClosesSlowClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		ln := servePipe(t, &Server{Handler: rec, ReadHeaderTimeout: 2 * time.Second, IdleTimeout: time.Minute})
		c, _ := ln.dial(t)
		writeAsync(c, "GET / HTTP/1.1\r\nHost: a\r\n") // never finished
		time.Sleep(1900 * time.Millisecond)
		synctest.Wait()
		if closed(c) {
			t.Fatal("closed before ReadHeaderTimeout")
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if !closed(c) {
			t.Fatal("slow head not cut off by ReadHeaderTimeout")
		}
		if len(rec.requests()) != 0 {
			t.Errorf("handler called")
		}
	})
}

func TestServer_ReadHeaderTimeoutCoversSilentNewConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := servePipe(t, &Server{Handler: &recorder{}, ReadHeaderTimeout: 2 * time.Second, IdleTimeout: time.Minute})
		c, _ := ln.dial(t)
		time.Sleep(2100 * time.Millisecond)
		synctest.Wait()
		if !closed(c) {
			t.Fatal("a connection that never sends a request outlives ReadHeaderTimeout")
		}
	})
}

func TestServer_IdleTimeoutClosesKeepAliveConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := servePipe(t, &Server{Handler: &recorder{}, ReadHeaderTimeout: time.Second, IdleTimeout: 16 * time.Second})
		c, br := ln.dial(t)
		for range 3 {
			writeAsync(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if res, _ := readResponse(t, br, "GET"); res.StatusCode != 200 {
				t.Fatal(res.Status)
			}
			time.Sleep(14 * time.Second) // idle, but less than IdleTimeout minus its slack
		}
		synctest.Wait()
		if closed(c) {
			t.Fatal("closed before IdleTimeout")
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if !closed(c) {
			t.Fatal("idle connection not closed after IdleTimeout")
		}
	})
}

func TestServer_ReadTimeoutStopsSlowBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errc := make(chan error, 1)
		ln := servePipe(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			errc <- err
		}), ReadHeaderTimeout: time.Second, ReadTimeout: 5 * time.Second})
		c, _ := ln.dial(t)
		writeAsync(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345")
		time.Sleep(6 * time.Second)
		synctest.Wait()
		select {
		case err := <-errc:
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("body read ended with %v, want a timeout", err)
			}
		default:
			t.Fatal("slow body not cut off by ReadTimeout")
		}
	})
}

func TestServer_WriteTimeoutStopsClientThatDoesNotRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errc := make(chan error, 1)
		ln := servePipe(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := []byte(strings.Repeat("x", 64<<10))
			for {
				if _, err := w.Write(chunk); err != nil {
					errc <- err
					return
				}
			}
		}), ReadHeaderTimeout: time.Second, WriteTimeout: 5 * time.Second})
		c, _ := ln.dial(t)
		writeAsync(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		time.Sleep(6 * time.Second)
		synctest.Wait()
		select {
		case err := <-errc:
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("write ended with %v, want a timeout", err)
			}
		default:
			t.Fatal("response to a client that does not read not cut off by WriteTimeout")
		}
		if !closed(c) {
			t.Error("connection kept after a write timeout")
		}
	})
}

// TestServer_ShutdownWaitsForInFlightRequests: Shutdown closes idle
// connections at once, lets the request in flight finish with
// "Connection: close", and returns when it has.
func TestServer_ShutdownWaitsForInFlightRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				<-release
			}
			io.WriteString(w, "done")
		}), ReadHeaderTimeout: time.Second, IdleTimeout: time.Minute}
		ln := servePipe(t, s)
		idle, idleBR := ln.dial(t)
		writeAsync(idle, "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
		readResponse(t, idleBR, "GET")
		busy, busyBR := ln.dial(t)
		writeAsync(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
		synctest.Wait()

		shutdown := make(chan error, 1)
		go func() { shutdown <- s.Shutdown(context.Background()) }()
		time.Sleep(time.Second)
		synctest.Wait()
		if !closed(idle) {
			t.Error("idle connection not closed by Shutdown")
		}
		select {
		case err := <-shutdown:
			t.Fatalf("Shutdown returned (%v) with a request in flight", err)
		default:
		}
		close(release)
		res, body := readResponse(t, busyBR, "GET")
		if body != "done" || !res.Close {
			t.Errorf("in-flight response %q close=%v", body, res.Close)
		}
		time.Sleep(time.Second) // Shutdown polls
		synctest.Wait()
		select {
		case err := <-shutdown:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		default:
			t.Fatal("Shutdown did not return after the last request")
		}
		if err := s.Serve(newPipeListener()); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	})
}

// TestServer_ShutdownForcesCloseWhenContextEnds: a request that does not
// finish in time has its context cancelled and its connection closed.
func TestServer_ShutdownForcesCloseWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctxErr := make(chan error, 1)
		s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			ctxErr <- r.Context().Err()
		}), ReadHeaderTimeout: time.Second}
		ln := servePipe(t, s)
		c, _ := ln.dial(t)
		writeAsync(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown: %v", err)
		}
		synctest.Wait()
		select {
		case err := <-ctxErr:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("request context: %v", err)
			}
		default:
			t.Error("request context not cancelled")
		}
		if !closed(c) {
			t.Error("connection not closed")
		}
	})
}

// TestServer_ShutdownGivesNewConnectionsAGrace: a connection accepted
// just before Shutdown may be sending its first request; it is served,
// and a silent one is closed after newConnGrace.
func TestServer_ShutdownGivesNewConnectionsAGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Server{Handler: &recorder{}, ReadHeaderTimeout: time.Minute}
		ln := servePipe(t, s)
		late, lateBR := ln.dial(t)
		silent, _ := ln.dial(t)
		synctest.Wait()
		shutdown := make(chan error, 1)
		go func() { shutdown <- s.Shutdown(context.Background()) }()
		time.Sleep(time.Second)
		writeAsync(late, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if res, _ := readResponse(t, lateBR, "GET"); res.StatusCode != 200 || !res.Close {
			t.Errorf("first request during shutdown: %d close=%v", res.StatusCode, res.Close)
		}
		synctest.Wait()
		if closed(silent) {
			t.Fatal("new connection closed before its grace")
		}
		time.Sleep(newConnGrace)
		synctest.Wait()
		if !closed(silent) {
			t.Error("silent new connection kept past its grace")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case err := <-shutdown:
			if err != nil {
				t.Error(err)
			}
		default:
			t.Error("Shutdown did not return")
		}
	})
}

// A deadline is kept as an offset from the connection's acceptance: the
// zero Time is 0 (none) and back, a deadline before the acceptance stays
// in the past, and one that is set is kept only when the new one is at
// most timeout/deadlineSlack later.
func TestConnDeadlineOffsets(t *testing.T) {
	c := &conn{accepted: time.Now()}
	if got := c.at(time.Time{}); got != 0 {
		t.Errorf("at(zero) = %v", got)
	}
	if got := c.timeAt(0); !got.IsZero() {
		t.Errorf("timeAt(0) = %v", got)
	}
	if got := c.at(c.accepted.Add(-time.Hour)); got != 1 || !c.timeAt(got).Before(time.Now()) {
		t.Errorf("a past deadline: at = %v, timeAt %v", got, c.timeAt(got))
	}
	d := c.accepted.Add(90 * time.Second)
	if got := c.timeAt(c.at(d)); !got.Equal(d) {
		t.Errorf("timeAt(at(d)) = %v, want %v", got, d)
	}
	if s := c.sinceAccepted(); s <= 0 || s > time.Since(c.accepted) {
		t.Errorf("sinceAccepted = %v", s)
	}
	const timeout = 16 * time.Second // slack: 1s
	for _, k := range []struct {
		cur, want time.Duration
		keep      bool
	}{
		{0, 0, true},
		{5 * time.Second, 5 * time.Second, true},
		{5 * time.Second, 5*time.Second + 999*time.Millisecond, true},
		{5 * time.Second, 6 * time.Second, false},
		{5 * time.Second, 4 * time.Second, false}, // earlier: always set
		{0, 5 * time.Second, false},
		{5 * time.Second, 0, false}, // none, after one
	} {
		if got := keepDeadline(k.cur, k.want, timeout); got != k.keep {
			t.Errorf("keepDeadline(%v, %v) = %v, want %v", k.cur, k.want, got, k.keep)
		}
	}
}

// LimitBodyRead bounds the body's reading by a deadline of the handler's
// as well as by ReadTimeout: the earlier of the two, never later than
// ReadTimeout's, and a zero time goes back to ReadTimeout's alone.
func TestServer_LimitBodyRead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits []time.Duration // from the head's arrival; 0: a zero time
		want   time.Duration   // when the stalled read fails
	}{
		{"earlier than ReadTimeout", []time.Duration{time.Second}, time.Second},
		{"later than ReadTimeout", []time.Duration{30 * time.Second}, 5 * time.Second},
		{"moved later within ReadTimeout", []time.Duration{time.Second, 3 * time.Second}, 3 * time.Second},
		{"zero: ReadTimeout's again", []time.Duration{time.Second, 0}, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				type result struct {
					err  error
					took time.Duration
				}
				done := make(chan result, 1)
				ln := servePipe(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					start := time.Now()
					l := w.(interface{ LimitBodyRead(time.Time) error })
					for _, d := range tc.limits {
						var at time.Time
						if d > 0 {
							at = start.Add(d)
						}
						if err := l.LimitBodyRead(at); err != nil {
							t.Errorf("LimitBodyRead: %v", err)
						}
					}
					_, err := io.ReadAll(r.Body)
					done <- result{err, time.Since(start)}
				}), ReadHeaderTimeout: time.Second, ReadTimeout: 5 * time.Second})
				c, _ := ln.dial(t)
				writeAsync(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345")
				time.Sleep(time.Minute)
				synctest.Wait()
				select {
				case r := <-done:
					var ne net.Error
					if !errors.As(r.err, &ne) || !ne.Timeout() {
						t.Errorf("body read ended with %v, want a timeout", r.err)
					}
					if r.took < tc.want || r.took > tc.want+time.Millisecond { // the clock is the bubble's
						t.Errorf("the read failed after %s, want %s", r.took, tc.want)
					}
				default:
					t.Fatal("the stalled body's read never ended")
				}
			})
		})
	}
}
