package gateway_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// instance is a backend instance on loopback that can be killed and
// brought back on the same address.
type instance struct {
	t       *testing.T
	addr    string
	mu      sync.Mutex
	srv     *httptest.Server
	hits    atomic.Int64 // requests other than health checks
	healthy atomic.Bool  // what /healthz answers
	handler http.HandlerFunc
}

func startInstance(t *testing.T, handler http.HandlerFunc) *instance {
	t.Helper()
	in := &instance{t: t, handler: handler}
	in.healthy.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in.addr = ln.Addr().String()
	in.serve(ln)
	t.Cleanup(func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		in.srv.Close()
	})
	return in
}

func (in *instance) URL() string { return "http://" + in.addr }

// ID is the instance's ID in its pool.
func (in *instance) ID() string { return "http://" + in.addr }

func (in *instance) serve(ln net.Listener) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if !in.healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		in.hits.Add(1)
		if in.handler != nil {
			in.handler(w, r)
			return
		}
		io.WriteString(w, "from "+in.addr)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	in.mu.Lock()
	in.srv = srv
	in.mu.Unlock()
}

// kill stops the instance abruptly: the listener closes (new connections
// are refused) and open connections are cut.
func (in *instance) kill() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.srv.Listener.Close()
	in.srv.CloseClientConnections()
}

// restart serves again on the same address.
func (in *instance) restart() {
	in.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", in.addr); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		in.t.Fatalf("restarting %s: %v", in.addr, err)
	}
	in.mu.Lock()
	old := in.srv
	in.mu.Unlock()
	old.Close()
	in.serve(ln)
}

// accessLines returns the access-log lines, once at least n are written
// (see waitAccess).
func (h *harness) accessLines(n int) []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(h.waitAccess(n), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "access" {
			out = append(out, m)
		}
	}
	return out
}

func (h *harness) pool(name string) *upstream.Pool {
	h.t.Helper()
	p, ok := h.rt.Upstreams.Lookup(name)
	if !ok {
		h.t.Fatalf("no pool for backend %s", name)
	}
	return p
}

// waitFor polls cond every few milliseconds for up to limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func instanceStatus(p *upstream.Pool, id string) (upstream.InstanceStatus, bool) {
	for _, s := range p.Instances() {
		if s.ID == id {
			return s, true
		}
	}
	return upstream.InstanceStatus{}, false
}

// load sends GETs to path from several workers until stopped, recording
// each request's time and result.
type load struct {
	h       *harness
	client  *http.Client
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	total   int
	fails   []loadFailure
	started time.Time
}

type loadFailure struct {
	at  time.Time
	why string
}

func startLoad(h *harness, path string, workers int) *load {
	tr := &http.Transport{MaxIdleConnsPerHost: workers * 2}
	l := &load{h: h, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, stop: make(chan struct{}), started: time.Now()}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				why := l.once(path)
				l.mu.Lock()
				l.total++
				if why != "" {
					l.fails = append(l.fails, loadFailure{at: time.Now(), why: why})
				}
				l.mu.Unlock()
			}
		})
	}
	h.t.Cleanup(func() { l.finish(); tr.CloseIdleConnections() })
	return l
}

func (l *load) once(path string) string {
	res, err := l.client.Get(l.h.srv.URL + path)
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	switch {
	case err != nil:
		return "body: " + err.Error()
	case res.StatusCode != 200:
		return res.Status + " " + string(body)
	}
	return ""
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// finish stops the load and returns the totals.
func (l *load) finish() (total int, fails []loadFailure) {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.fails
}
