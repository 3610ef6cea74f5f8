package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

func writeConfig(t *testing.T, path, backend, extra string) {
	t.Helper()
	cfg := fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin: {address: "127.0.0.1:0"}
  timeouts: {shutdown: 5s}
backends:
  - name: be
    instances: [{url: %q}]
apis:
  - name: a
    path_prefix: /a
    backend: be
    auth: {anonymous: true}
%s`, backend, extra)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type started struct {
	srv    *server.Server
	url    string
	admin  string
	ctx    context.Context // the server's, until the test ends
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returns
	err    error         // what Serve returned
}

func start(t *testing.T, file string) *started {
	t.Helper()
	return startIn(t, file, t.TempDir())
}

// startIn starts a server with its store in dataDir.
func startIn(t *testing.T, file, dataDir string) *started {
	t.Helper()
	return startWith(t, file, dataDir, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startWith starts a server logging to logger, serves it until the test
// ends, and watches its configuration file.
func startWith(t *testing.T, file, dataDir string, logger *slog.Logger) *started {
	t.Helper()
	s := serve(t, file, dataDir, logger)
	go func() { _ = s.srv.Watch(s.ctx) }()
	return s
}

// serve starts a server logging to logger and serves it until the test
// ends, without watching its configuration file.
func serve(t *testing.T, file, dataDir string, logger *slog.Logger) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Options{
		Load:       func() (*config.Document, config.Diagnostics) { return config.Load(file) },
		ConfigFile: file,
		Logger:     logger,
		DataDir:    dataDir,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Listen(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &started{srv: srv, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		url: "http://" + srv.Addr("public").String(), admin: "http://" + srv.AdminAddr().String()}
	go func() {
		s.err = srv.Serve(ctx)
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return s
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// SIGTERM (here, the context ending) stops accepting and lets every
// in-flight request finish.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	entered := make(chan struct{}, 10)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		time.Sleep(500 * time.Millisecond)
		io.WriteString(w, "finished")
	}))
	defer backend.Close()
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, file, backend.URL, "")
	s := start(t, file)

	const n = 5
	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		wg.Go(func() {
			res, err := http.Get(s.url + "/a/slow")
			if err != nil {
				results <- "error: " + err.Error()
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			results <- fmt.Sprintf("%d %s", res.StatusCode, b)
		})
	}
	for range n {
		<-entered
	}
	s.cancel()
	wg.Wait()
	close(results)
	for r := range results {
		if r != "200 finished" {
			t.Errorf("in-flight request: %s", r)
		}
	}
	select {
	case <-s.done:
		if s.err != nil {
			t.Fatalf("Serve returned %v", s.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after draining")
	}
	if _, err := http.Get(s.url + "/a/x"); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

// pathEchoConfig starts a backend that answers with the request's path
// and writes a configuration that routes /a to it; it returns both.
func pathEchoConfig(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, file, backend.URL, "")
	return backend, file
}

// A change written after the first load but before the watch began is
// picked up when it begins, not at the next change.
func TestReloadOfAChangeBeforeTheWatch(t *testing.T) {
	backend, file := pathEchoConfig(t)
	s := serve(t, file, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	v1 := s.srv.Gateway().Snapshot().Version
	writeConfig(t, file, backend.URL, "  - {name: b, path_prefix: /b, backend: be, auth: {anonymous: true}}\n")
	go func() { _ = s.srv.Watch(s.ctx) }()
	waitFor(t, func() bool { return s.srv.Gateway().Snapshot().Version != v1 })
	if code, _ := get(t, s.url+"/b/x"); code != 200 {
		t.Fatalf("after the watch began, /b: %d", code)
	}
}

func TestReloadOnFileChangeAndRefusal(t *testing.T) {
	backend, file := pathEchoConfig(t)
	s := start(t, file)
	if code, _ := get(t, s.url+"/b/x"); code != 404 {
		t.Fatalf("before reload /b: %d", code)
	}
	v1 := s.srv.Gateway().Snapshot().Version

	// A valid change is picked up without a signal.
	writeConfig(t, file, backend.URL, "  - {name: b, path_prefix: /b, backend: be, auth: {anonymous: true}}\n")
	waitFor(t, func() bool { return s.srv.Gateway().Snapshot().Version != v1 })
	if code, _ := get(t, s.url+"/b/x"); code != 200 {
		t.Fatalf("after reload /b: %d", code)
	}
	v2 := s.srv.Gateway().Snapshot().Version

	// An invalid change is refused; the running config keeps serving.
	writeConfig(t, file, backend.URL, "  - {name: c, path_prefix: /c, backend: nope, auth: {anonymous: true}}\n")
	waitFor(t, func() bool { return metric(t, s.admin, `gatehouse_config_reloads_total{outcome="failure"}`) == "1" })
	if s.srv.Gateway().Snapshot().Version != v2 {
		t.Fatal("an invalid config replaced the running one")
	}
	if code, _ := get(t, s.url+"/b/x"); code != 200 {
		t.Fatalf("after refused reload /b: %d", code)
	}
	if err := s.srv.Reload(context.Background(), "test"); err == nil || !strings.Contains(err.Error(), `unknown backend "nope"`) {
		t.Fatalf("Reload error = %v", err)
	}
}

func TestAdminEndpoints(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, file, backend.URL, "")
	s := start(t, file)
	if code, body := get(t, s.admin+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("healthz %d %s", code, body)
	}
	if code, body := get(t, s.admin+"/readyz"); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("readyz %d %s", code, body)
	}
	get(t, s.url+"/a/x")
	get(t, s.url+"/nowhere")
	get(t, s.url+"/a/..%2f")
	for _, want := range []string{
		`gatehouse_requests_rejected_total{reason="no_route"} 1`,
		`gatehouse_requests_rejected_total{reason="bad_path"} 1`,
		`gatehouse_requests_total{api="a",code="200",operation="*"} 1`,
		`gatehouse_config_reloads_total{outcome="success"} 1`,
		`gatehouse_request_duration_seconds_bucket{api="a",operation="*"`,
		`gatehouse_upstream_duration_seconds_count{backend="be"} 1`,
	} {
		// A complete response is sent before its metrics are recorded:
		// give the last ones a moment.
		var body string
		for range 100 {
			if _, body = get(t, s.admin+"/metrics"); strings.Contains(body, want) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The admin listener is not part of the public one.
	if code, _ := get(t, s.url+"/metrics"); code != 404 {
		t.Errorf("public /metrics: %d", code)
	}
}

func metric(t *testing.T, admin, series string) string {
	_, body := get(t, admin+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 100 {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met within 5s")
}

// A client of the admin listener that announces a body and never sends
// it loses its connection once the request timeout passes; it was held
// for good (net/http waits to discard the body after the answer).
func TestAdminListener_ABodyNeverSentDoesNotHoldTheConnection(t *testing.T) {
	t.Cleanup(server.SetAdminReadTimeout(300 * time.Millisecond))
	_, file := pathEchoConfig(t)
	s := start(t, file)
	c, err := net.Dial("tcp", strings.TrimPrefix(s.admin, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c)
	if err != nil {
		t.Fatalf("the connection was still open after 5 s: %v", err)
	}
}

// server.limits.max_connections bounds the public listeners' connections,
// plain (h1) and TLS (net/http) alike: over it a new connection waits,
// unanswered (a TLS one without its handshake), until one closes; the
// metrics say so; and the admin listener, limited apart, still answers.
func TestPublicListeners_ConnectionLimit(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t, "127.0.0.1").WriteFiles(t, dir, "server")
	for _, c := range []struct{ name, tls string }{
		{"plain", ""},
		{"tls", fmt.Sprintf(", tls: {cert_file: %q, key_file: %q}", certFile, keyFile)},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "gatehouse.yaml")
			cfg := fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"%s}]
  admin: {address: "127.0.0.1:0"}
  limits: {max_connections: 2}
  timeouts: {shutdown: 5s}
backends:
  - name: be
    instances: [{url: %q}]
apis:
  - {name: a, path_prefix: /a, backend: be, auth: {anonymous: true}}
`, c.tls, backend.URL)
			if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			s := start(t, file)
			addr := s.srv.Addr("public").String()
			// send opens a connection and sends a request on it, in a
			// goroutine (a TLS handshake waits for the accept); the
			// answer (nil: 200 "ok") comes on the channel.
			send := func() (net.Conn, chan error) {
				raw, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { raw.Close() })
				raw.SetDeadline(time.Now().Add(10 * time.Second))
				done := make(chan error, 1)
				go func() {
					var conn net.Conn = raw
					if c.tls != "" {
						conn = tls.Client(raw, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
					}
					if _, err := io.WriteString(conn, "GET /a/x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
						done <- err
						return
					}
					res, err := http.ReadResponse(bufio.NewReader(conn), nil)
					if err != nil {
						done <- err
						return
					}
					defer res.Body.Close()
					if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 || string(b) != "ok" {
						err = fmt.Errorf("%d %q", res.StatusCode, b)
					}
					done <- err
				}()
				return raw, done
			}
			answered := func(done chan error, wait time.Duration) (bool, error) {
				select {
				case err := <-done:
					return true, err
				case <-time.After(wait):
					return false, nil
				}
			}
			c1, done1 := send()
			_, done2 := send()
			for _, d := range []chan error{done1, done2} {
				if ok, err := answered(d, 5*time.Second); !ok || err != nil {
					t.Fatalf("answered %v, %v", ok, err)
				}
			}
			_, done3 := send()
			if ok, err := answered(done3, 300*time.Millisecond); ok {
				t.Fatalf("a third connection was answered over a limit of two: %v", err)
			}
			for series, want := range map[string]string{
				`gatehouse_connections_open{listeners="public"}`: "2",
				`gatehouse_connections_max{listeners="public"}`:  "2",
				`gatehouse_connections_max{listeners="admin"}`:   "256",
			} {
				if got := metric(t, s.admin, series); got != want {
					t.Errorf("%s = %q, want %s", series, got, want)
				}
			}
			if got := metric(t, s.admin, `gatehouse_connection_limit_waits_total{listeners="public"}`); got == "" || got == "0" {
				t.Errorf("waits = %q, want at least 1", got)
			}
			c1.Close()
			if ok, err := answered(done3, 5*time.Second); !ok || err != nil {
				t.Fatalf("the waiting connection was not served once one closed: %v, %v", ok, err)
			}
		})
	}
}
