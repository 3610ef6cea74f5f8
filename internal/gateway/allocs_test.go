package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	benchharness "github.com/gatehouse-dev/gatehouse/bench/harness"
	"github.com/gatehouse-dev/gatehouse/internal/anomaly"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/h1"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// The allocation budgets of a proxied request on the hot path: the h1
// server, the gateway's steps, the access line, the metrics and the h1
// transport, as `go run ./bench` runs them (a backend and a client that
// allocate nothing themselves). They are today's counts; a change that
// adds an allocation to every request fails here and has to say why in
// docs/performance.md (issue 6: no feature quietly makes the hot path
// slower). Lower them when a change saves one.
const (
	passthroughAllocBudget = 4
	fullChainAllocBudget   = 4
)

// TestHotPathAllocations counts the allocations of one request through a
// real h1 listener and a real upstream connection, on loopback.
func TestHotPathAllocations(t *testing.T) {
	t.Run("default", func(t *testing.T) { testHotPathAllocations(t, "", nil) })
	// Anomaly detection adds no allocation to a known caller's request.
	d := anomaly.New(anomaly.Options{})
	t.Cleanup(d.Close)
	d.Start()
	t.Run("anomalies", func(t *testing.T) {
		testHotPathAllocations(t, "anomalies: {enabled: true}\n", d)
		if d.Callers() == 0 {
			t.Fatal("the detector saw no caller")
		}
	})
}

func testHotPathAllocations(t *testing.T, extra string, d *anomaly.Detector) {
	if testing.Short() {
		t.Skip("short")
	}
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	be := startStaticBackend(t)

	iss, err := devissuer.New(devissuer.Options{Audience: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	issSrv := httptest.NewServer(iss.Handler())
	t.Cleanup(issSrv.Close)
	iss.SetURL(issSrv.URL)
	token, err := iss.Mint(map[string]any{"sub": "alloc-client", "aud": "bench", "scope": "bench:read",
		"groups": []string{"benchers"}, "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}

	logger := slog.New(slog.DiscardHandler)
	metrics := observe.NewMetrics()
	rt := &gateway.Runtime{
		Logger:     logger,
		AccessLog:  observe.NewJSONAccessLog(io.Discard, 200*time.Millisecond),
		Metrics:    metrics,
		KeySets:    identity.NewKeySets(logger, identity.Hooks{}),
		Transports: upstream.NewTransports(),
		Upstreams:  gateway.NewUpstreams(logger, metrics),
		Secrets:    secret.Local{},
		Anomalies:  d,
	}
	t.Cleanup(rt.KeySets.Close)
	t.Cleanup(rt.Upstreams.Close)
	t.Cleanup(rt.Transports.Close)
	gw := gateway.New(rt)
	// The routes of go run ./bench.
	doc, diags := config.Parse("allocs.yaml", []byte(benchharness.GatehouseRoutes(issSrv.URL, be)+extra))
	if diags != nil {
		t.Fatal(diags)
	}
	if _, diags := gw.Load(context.Background(), doc); diags != nil {
		t.Fatal(diags)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &h1.Server{Handler: gw, ReuseRequests: true} // as internal/server runs it
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	for _, tc := range []struct {
		name   string
		req    string
		budget int
	}{
		{"passthrough", "GET /pass/x HTTP/1.1\r\nHost: gw\r\n\r\n", passthroughAllocBudget},
		{"full chain", "GET /full/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + token + "\r\n\r\n", fullChainAllocBudget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			req := []byte(tc.req)
			buf := make([]byte, 4096)
			var failed error
			do := func() {
				if failed != nil {
					return
				}
				if _, err := c.Write(req); err != nil {
					failed = err
					return
				}
				// The backend answers "ok" with Content-Length 2 (see
				// startStaticBackend); the gateway's head varies.
				n := 0
				for {
					m, err := c.Read(buf[n:])
					if err != nil {
						failed = err
						return
					}
					n += m
					if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 && n >= i+4+2 {
						if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200 ")) {
							failed = fmt.Errorf("unexpected response: %q", buf[:min(n, 200)])
						}
						return
					}
				}
			}
			for range 200 { // warm up: pooled buffers, the upstream connection, the token cache
				do()
			}
			allocs := testing.AllocsPerRun(2000, do)
			if failed != nil {
				t.Fatal(failed)
			}
			t.Logf("%s: %.0f allocations per request (budget %d)", tc.name, allocs, tc.budget)
			if allocs > float64(tc.budget) {
				t.Errorf("%s: %.0f allocations per request, budget %d: see docs/performance.md", tc.name, allocs, tc.budget)
			}
		})
	}
}

// startStaticBackend serves "ok" to every request without a body, on
// kept-alive connections, allocating nothing per request.
func startStaticBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	res := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 16<<10)
				n := 0
				for {
					m, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += m
					for {
						i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
						if i < 0 {
							break
						}
						if _, err := c.Write(res); err != nil {
							return
						}
						n = copy(buf, buf[i+4:n])
					}
					if n == len(buf) {
						return // a head too large for this backend
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
