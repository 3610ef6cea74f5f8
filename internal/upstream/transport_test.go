package upstream

import (
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestTransport_StripsHopByHopOverBothPaths: a response's hop-by-hop
// fields, and those its Connection names, are gone from its Header
// whether the instance is plain HTTP (h1's StripHopByHop) or HTTPS
// (net/http's transport, then h1.RemoveHopByHop); the other fields stay.
func TestTransport_StripsHopByHopOverBothPaths(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range map[string]string{"Connection": "X-Hop, x-hop2", "X-Hop": "1", "X-Hop2": "2", "Keep-Alive": "timeout=5",
			"Proxy-Authenticate": "Basic", "Proxy-Connection": "keep-alive", "Upgrade": "h2c", "Te": "trailers", "X-Kept": "yes"} {
			w.Header()[k] = []string{v}
		}
		io.WriteString(w, "ok")
	})
	plain := httptest.NewServer(h)
	defer plain.Close()
	secure := httptest.NewTLSServer(h)
	defer secure.Close()
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	tr := newTransport(TransportOptions{DialTimeout: 5 * time.Second, RootCAs: roots})
	defer tr.CloseIdleConnections()
	for _, url := range []string{plain.URL, secure.URL} {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		io.ReadAll(res.Body)
		res.Body.Close()
		for _, k := range []string{"Connection", "X-Hop", "X-Hop2", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection", "Upgrade", "Te"} {
			if v, ok := res.Header[k]; ok {
				t.Errorf("%s: %s: %q kept", url, k, v)
			}
		}
		if res.Header.Get("X-Kept") != "yes" || res.Header.Get("Content-Length") != "2" {
			t.Errorf("%s: end-to-end fields lost: %v", url, res.Header)
		}
	}
}
