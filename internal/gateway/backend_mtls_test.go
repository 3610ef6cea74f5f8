package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

var serial int64 = 100

// issue returns a PEM certificate and key for cn.
func (ca *testCA) issue(t *testing.T, cn string, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// replaceFile writes a file the way deployment tools do: a new file
// renamed over the old one.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const mtlsConfig = `
backends:
  - name: be
    instances: [{url: "{{.Backend}}"}]
    tls:
      ca_file: "{{.CAFile}}"
      client_cert_file: "{{.CertFile}}"
      client_key_file: "{{.KeyFile}}"
apis:
  - name: public
    path_prefix: /public
    backend: be
    auth: {anonymous: true}
`

// The promise: the gateway presents its client certificate to a backend
// that requires one, and a certificate rotated on disk is used for new
// connections without a restart or a reload; a broken file keeps the
// previous certificate and is logged.
func TestBackendMTLS_PresentsAndReloadsClientCertificate(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	os.WriteFile(caFile, ca.pem, 0o600)
	c1, k1 := ca.issue(t, "gateway-1", true)
	replaceFile(t, certFile, c1)
	replaceFile(t, keyFile, k1)

	sc, sk := ca.issue(t, "backend", false)
	serverCert, err := tls.X509KeyPair(sc, sk)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	backend.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	backend.Config.SetKeepAlivesEnabled(false) // each request is a new handshake
	backend.StartTLS()
	t.Cleanup(backend.Close)

	h := newIDHarness(t, nil)
	h.vars["Backend"], h.vars["CAFile"], h.vars["CertFile"], h.vars["KeyFile"] = backend.URL, caFile, certFile, keyFile
	if d := h.load(mtlsConfig); d != nil {
		t.Fatal(d)
	}
	seen := func() string {
		t.Helper()
		res, err := h.srv.Client().Get(h.srv.URL + "/public/x")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("status %d: %s", res.StatusCode, b)
		}
		return string(b)
	}
	if got := seen(); got != "gateway-1" {
		t.Fatalf("backend saw %q", got)
	}

	c2, k2 := ca.issue(t, "gateway-2", true)
	replaceFile(t, keyFile, k2)
	replaceFile(t, certFile, c2)
	waitUntil(t, func() bool { return seen() == "gateway-2" })

	// A broken certificate file is refused; the previous one stays.
	replaceFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	waitUntil(t, func() bool { return strings.Contains(h.logs.String(), "previous one stays in use") })
	if got := seen(); got != "gateway-2" {
		t.Fatalf("after a broken file the backend saw %q", got)
	}
	if strings.Contains(h.logs.String(), "PRIVATE KEY") {
		t.Fatal("key material in the log")
	}
}

// waitUntil polls a cross-goroutine effect (a file watch), at most 5s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for range 100 {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met within 5s")
}
