package server_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

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
