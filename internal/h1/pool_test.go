package h1

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// pipeBackend is a net/http server reached over net.Pipe, for tests in a
// synctest bubble; it counts the connections dialed.
type pipeBackend struct {
	ln    *pipeListener
	srv   *http.Server
	dials atomic.Int32
}

func startPipeBackend(t *testing.T, h http.Handler) *pipeBackend {
	b := &pipeBackend{ln: newPipeListener(), srv: &http.Server{Handler: h}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.srv.Serve(b.ln)
	}()
	t.Cleanup(func() {
		b.srv.Close()
		<-done
	})
	return b
}

func (b *pipeBackend) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	b.dials.Add(1)
	client, server := net.Pipe()
	select {
	case b.ln.conns <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestTransport_IdleConnTimeoutClosesPooledConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		be := startPipeBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		tr := &Transport{DialContext: be.dial, IdleConnTimeout: 10 * time.Second}
		defer tr.CloseIdleConnections()
		get := func() {
			req, _ := http.NewRequest("GET", "http://backend/", nil)
			res, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(res.Body)
			res.Body.Close()
		}
		get()
		time.Sleep(9 * time.Second)
		get() // reuses the pooled connection
		if be.dials.Load() != 1 || tr.IdleConns("backend") != 1 {
			t.Fatalf("dials %d, idle %d", be.dials.Load(), tr.IdleConns("backend"))
		}
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if n := tr.IdleConns("backend"); n != 0 {
			t.Errorf("%d idle connections after IdleConnTimeout", n)
		}
		get()
		if be.dials.Load() != 2 {
			t.Errorf("dials %d, want a new connection after the timeout", be.dials.Load())
		}
	})
}

// A host's pool leaves the transport once its last idle connection timed
// out, so that the pools of upstreams replaced for good do not pile up; a
// connection in use when its pool left is pooled again under its host.
func TestTransport_EmptyPoolsAreForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		be := startPipeBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		tr := &Transport{DialContext: be.dial, IdleConnTimeout: 10 * time.Second}
		defer tr.CloseIdleConnections()
		pools := func() int {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			return len(tr.pools)
		}
		get := func(host string) *http.Response {
			req, _ := http.NewRequest("GET", "http://"+host+"/", nil)
			res, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		for i := range 5 {
			res := get(fmt.Sprintf("backend-%d", i))
			io.ReadAll(res.Body)
			res.Body.Close()
		}
		if n := pools(); n != 5 {
			t.Fatalf("%d pools, want one per host", n)
		}
		// One connection is in use while the pools time out.
		inUse := get("backend-0")
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if n := pools(); n != 0 {
			t.Fatalf("%d pools after every idle connection timed out, want none", n)
		}
		io.ReadAll(inUse.Body)
		inUse.Body.Close()
		if n := tr.IdleConns("backend-0"); n != 1 {
			t.Fatalf("%d idle connections to backend-0, want the one in use, pooled again", n)
		}
		dials := be.dials.Load()
		res := get("backend-0")
		io.ReadAll(res.Body)
		res.Body.Close()
		if be.dials.Load() != dials {
			t.Fatal("the connection pooled again was not reused")
		}
	})
}

// TestTransport_PoolReusesMostRecentFirst: the pool is a stack, so that
// surplus connections stay at the bottom and age out.
func TestTransport_PoolReusesMostRecentFirst(t *testing.T) {
	tr := &Transport{}
	var pcs []*persistConn
	for range 3 {
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		pc := newPersistConn(tr, "h", c1)
		tr.putIdle(pc)
		pcs = append(pcs, pc)
	}
	for i := 2; i >= 0; i-- {
		pc, err := tr.getConn(context.Background(), "h", time.Now(), time.Time{}, false)
		if err != nil {
			t.Fatal(err)
		}
		if pc != pcs[i] {
			t.Fatalf("got connection %d, want %d", indexOf(pcs, pc), i)
		}
	}
}

func indexOf(pcs []*persistConn, pc *persistConn) int {
	for i, p := range pcs {
		if p == pc {
			return i
		}
	}
	return -1
}

// TestTransport_PoolIsBounded: no more than MaxIdleConnsPerHost idle
// connections are kept.
func TestTransport_PoolIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var inflight sync.WaitGroup
		be := startPipeBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				inflight.Done()
				<-release
			}
			io.WriteString(w, r.RemoteAddr)
		}))
		tr := &Transport{DialContext: be.dial, MaxIdleConnsPerHost: 2}
		defer tr.CloseIdleConnections()
		var wg sync.WaitGroup
		inflight.Add(4)
		for range 4 {
			wg.Go(func() {
				req, _ := http.NewRequest("GET", "http://backend/hold", nil)
				res, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.ReadAll(res.Body)
				res.Body.Close()
			})
		}
		inflight.Wait()
		close(release)
		wg.Wait()
		if n := tr.IdleConns("backend"); n != 2 {
			t.Errorf("%d idle connections, want MaxIdleConnsPerHost=2", n)
		}
		if be.dials.Load() != 4 {
			t.Errorf("%d dials", be.dials.Load())
		}
	})
}
