package server_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

func TestTLSListener_HTTP2_MTLS_AndCertificateRotation(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s", r.Header.Get("X-Gatehouse-Credential"), r.Header.Get("X-Gatehouse-Subject"))
	}))
	defer backend.Close()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t, "127.0.0.1").WriteFiles(t, dir, "server")
	clientCA := testpki.NewCA(t, "client CA")
	clientCAFile := clientCA.WriteFile(t, dir, "client-ca")
	file := filepath.Join(dir, "gatehouse.yaml")
	cfg := fmt.Sprintf(`
server:
  listeners:
    - name: public
      address: "127.0.0.1:0"
      tls: {cert_file: %q, key_file: %q, client_ca_file: %q}
  admin: {address: "127.0.0.1:0"}
backends:
  - name: be
    instances: [{url: %q}]
apis:
  - name: svc
    path_prefix: /svc
    backend: be
    auth: {credentials: [mtls]}
  - name: open
    path_prefix: /open
    backend: be
    auth: {anonymous: true}
`, certFile, keyFile, clientCAFile, backend.URL)
	os.WriteFile(file, []byte(cfg), 0o644)
	s := start(t, file)
	url := "https://" + s.srv.Addr("public").String()

	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), Certificates: certs},
			ForceAttemptHTTP2: true,
		}}
	}
	// HTTP/2 on TLS.
	res, err := client().Get(url + "/open/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Proto != "HTTP/2.0" {
		t.Errorf("protocol %s, want HTTP/2.0", res.Proto)
	}
	// mTLS credential: the certificate's URI SAN is the subject.
	leaf := clientCA.Client(t, "billing-service", "spiffe://example.org/billing")
	res, err = client(leaf.TLS).Get(url + "/svc/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "mtls|spiffe://example.org/billing" {
		t.Fatalf("with a client certificate: %d %s", res.StatusCode, body)
	}
	// No certificate: 401.
	res, err = client().Get(url + "/svc/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("without a client certificate: %d", res.StatusCode)
	}
	// A certificate from another CA is no credential: the handshake fails,
	// or the client (seeing it is not from an acceptable CA) sends none.
	stranger := testpki.NewCA(t, "stranger").Client(t, "mallory")
	if res, err := client(stranger.TLS).Get(url + "/svc/x"); err == nil {
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("a certificate from an unknown CA: %d", res.StatusCode)
		}
	}
	// Even when forced onto the wire, it fails the handshake.
	forced := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger.TLS, nil }}}}
	if res, err := forced.Get(url + "/svc/x"); err == nil {
		res.Body.Close()
		t.Fatalf("an unverifiable client certificate was accepted: %d", res.StatusCode)
	}

	// Rotation: new files + reload → the new certificate is served.
	ca2 := testpki.NewCA(t, "test CA 2")
	ca2.Server(t, "127.0.0.1").WriteFiles(t, dir, "server")
	if err := s.srv.Reload(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	c2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca2.Pool()}}}
	res, err = c2.Get(url + "/open/x")
	if err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	res.Body.Close()
}

// A reload that would take the certificate away from a listener serving
// TLS (its tls removed, the listener renamed) is refused, naming it; the
// listener keeps serving with its certificate. (The reload applied, every
// handshake failed until a restart.)
func TestTLSListener_ReloadCannotTakeItsCertificateAway(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t, "127.0.0.1").WriteFiles(t, dir, "server")
	file := filepath.Join(dir, "gatehouse.yaml")
	write := func(listener string) {
		os.WriteFile(file, []byte(fmt.Sprintf(`
server:
  listeners:
    - %s
  admin: {address: "127.0.0.1:0"}
backends:
  - name: be
    instances: [{url: %q}]
apis:
  - name: open
    path_prefix: /open
    backend: be
    auth: {anonymous: true}
`, listener, backend.URL)), 0o644)
	}
	secure := fmt.Sprintf(`{name: public, address: "127.0.0.1:0", tls: {cert_file: %q, key_file: %q, min_version: "1.2"}}`, certFile, keyFile)
	write(secure)
	s := start(t, file)
	url := "https://" + s.srv.Addr("public").String() + "/open/x"
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12}}}
	get := func(what string) {
		t.Helper()
		res, err := client.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		res.Body.Close()
		client.CloseIdleConnections()
	}
	get("at start")
	for name, listener := range map[string]string{
		"tls removed": `{name: public, address: "127.0.0.1:0"}`,
		"renamed":     strings.Replace(secure, "name: public", "name: renamed", 1),
	} {
		write(listener)
		err := s.srv.Reload(t.Context(), "test")
		if err == nil || !strings.Contains(err.Error(), `listener "public" serves TLS`) {
			t.Fatalf("%s: reload %v, want it refused", name, err)
		}
		get("after the refused reload (" + name + ")")
	}
	// Its TLS settings are applied by a reload: TLS 1.3 only now.
	write(strings.Replace(secure, `min_version: "1.2"`, `min_version: "1.3"`, 1))
	if err := s.srv.Reload(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	if res, err := client.Get(url); err == nil {
		res.Body.Close()
		t.Fatal("a TLS 1.2 client was served after min_version became 1.3")
	}
}

// On a TLS listener (Go's server) an HTTP/1.0 request with both
// Transfer-Encoding and Content-Length is framed by the length; the
// chunks after it must not be read as a request of their own: the
// connection is closed after the response, and the hidden request never
// reaches the backend.
func TestTLSListener_HTTP10TransferEncodingCannotSmuggle(t *testing.T) {
	backend, reached := pathRecorder(t)
	s, ca := startTLSProxy(t, backend.URL, "", "")
	hidden := "GET /p/SMUGGLED HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n"
	raw := fmt.Sprintf("POST /p/outer HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(hidden), hidden)
	conn, err := tls.Dial("tcp", s.srv.Addr("public").String(), &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, raw)
	all, _ := io.ReadAll(conn) // until the gateway closes
	if n := strings.Count(string(all), "HTTP/1."); n != 1 {
		t.Fatalf("%d responses on the connection, want 1:\n%s", n, all)
	}
	time.Sleep(100 * time.Millisecond)
	if paths := reached(); slices.Contains(paths, "/p/SMUGGLED") {
		t.Fatalf("the hidden request reached the backend: %v", paths)
	}
}

// On a plain listener a connection whose first request offered an
// upgrade cannot be turned over to a lenient parser for what follows: an
// h2c offer stays with h1 (which refuses HTTP/1.0 with Transfer-Encoding),
// and after a WebSocket offer the backend declined, the HTTP/1.0 request
// Go's server parses closes the connection; the hidden request never
// reaches the backend.
func TestPlainListener_UpgradeOfferThenHTTP10CannotSmuggle(t *testing.T) {
	backend, reached := pathRecorder(t)
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin: {address: "127.0.0.1:0"}
backends:
  - {name: be, instances: [{url: %q}]}
apis:
  - {name: p, path_prefix: /p, backend: be, auth: {anonymous: true}}
`, backend.URL)), 0o644)
	s := start(t, file)
	hidden := "GET /p/SMUGGLED HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n"
	smuggle := fmt.Sprintf("POST /p/outer HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(hidden), hidden)
	for _, offer := range []string{
		"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n",
		"Connection: Upgrade\r\nUpgrade: websocket\r\n",
	} {
		conn, err := net.Dial("tcp", s.url[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "GET /p/first HTTP/1.1\r\nHost: x\r\n"+offer+"\r\n")
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		io.WriteString(conn, smuggle)
		rest, _ := io.ReadAll(br) // until the gateway closes
		conn.Close()
		if n := strings.Count(string(rest), "HTTP/1."); n > 1 {
			t.Fatalf("after %q: %d responses to the HTTP/1.0 request:\n%s", offer, n, rest)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if paths := reached(); slices.Contains(paths, "/p/SMUGGLED") {
		t.Fatalf("the hidden request reached the backend: %v", paths)
	}
}

// startTLSProxy starts a gateway with a TLS listener (a certificate of
// the CA it returns) and an anonymous API under /p in front of backend;
// server is added to the server section, api to the API's settings.
func startTLSProxy(t *testing.T, backend, server, api string) (*started, *testpki.CA) {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t, "127.0.0.1").WriteFiles(t, dir, "server")
	file := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0", tls: {cert_file: %q, key_file: %q}}]
  admin: {address: "127.0.0.1:0"}%s
backends:
  - {name: be, instances: [{url: %q}]}
apis:
  - {name: p, path_prefix: /p, backend: be, auth: {anonymous: true}%s}
`, certFile, keyFile, server, backend, api)), 0o644)
	return start(t, file), ca
}

// pathRecorder starts a backend that reads each request's body and
// records its path; reached returns the paths so far.
func pathRecorder(t *testing.T) (backend *httptest.Server, reached func() []string) {
	t.Helper()
	var paths []string
	var mu sync.Mutex
	backend = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(backend.Close)
	return backend, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(paths)
	}
}

// A client on a TLS listener (Go's server, HTTP/1.1 and HTTP/2) that
// sends part of its body and then nothing more gets 408 at the upstream
// attempt's deadline, not at the read timeout (5s here, 60s by
// default): the backend's connection is not held for it.
func TestTLSListener_StalledBodyEndsAtTheAttemptsDeadline(t *testing.T) {
	backend, reached := pathRecorder(t)
	s, ca := startTLSProxy(t, backend.URL, "\n  timeouts: {read: 5s, read_header: 1s}", ", timeouts: {upstream_attempt: 300ms}")
	for _, h2 := range []bool{false, true} {
		name := map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2]
		t.Run(name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: h2}
			if !h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			pr, pw := io.Pipe()
			defer pw.Close()
			go pw.Write([]byte("ten bytes.")) // and then nothing
			req, _ := http.NewRequest("POST", "https://"+s.srv.Addr("public").String()+"/p/upload", pr)
			req.ContentLength = 100
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			begin := time.Now()
			res, err := client.Do(req)
			if err != nil {
				t.Fatalf("no response to the stalled upload: %v", err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusRequestTimeout || res.Proto != name && !(name == "HTTP/2" && res.Proto == "HTTP/2.0") {
				t.Fatalf("%s %s: %s, want 408 over %s", res.Proto, res.Status, body, name)
			}
			// Before the fix the 408 came too, but at the read timeout.
			if took := time.Since(begin); took >= 4*time.Second {
				t.Errorf("the 408 came after %s: at the read timeout (5s), not at the attempt's deadline (300ms)", took.Round(time.Millisecond))
			}
		})
	}
	if paths := reached(); len(paths) != 0 {
		t.Errorf("the backend got %v, want nothing complete", paths)
	}
}
