package securitytest_test

import (
	"bytes"
	"crypto/x509"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
	"github.com/gatehouse-dev/gatehouse/internal/securitytest"
)

// env is a gateway process with an admin API that requires the admins
// group and an anonymous API on "/", both in front of one raw-socket
// backend, plus the OIDC issuer the gateway trusts.
type env struct {
	t    testing.TB
	gw   *securitytest.Gateway
	be   *securitytest.RawBackend
	iss  *devissuer.Issuer
	pool *x509.CertPool
	cfg  string // the configuration the gateway started with
}

type envOptions struct {
	ReadHeader, Read, Write, Idle string
	MaxHeaderBytes, MaxURI        string
	MaxBody                       string
	MaxConnections                string // 0: the default
	ResponseHeader                string
	ResponseIdle                  string // the backend's response_idle
	// ExtraAPI is YAML appended to the apis list (before the catch-all).
	ExtraAPI string
	// AdminCaseInsensitive sets case_insensitive_paths on the admin API.
	AdminCaseInsensitive bool
}

const envConfig = `
server:
  listeners:
    - {name: public, address: "127.0.0.1:0"}
    - name: tls
      address: "127.0.0.1:0"
      tls: {cert_file: "{{.Cert}}", key_file: "{{.Key}}"}
  admin: {address: "127.0.0.1:0"}
  timeouts: {read_header: {{.O.ReadHeader}}, read: {{.O.Read}}, write: {{.O.Write}}, idle: {{.O.Idle}}, shutdown: 5s}
  limits: {max_header_bytes: {{.O.MaxHeaderBytes}}, max_uri: {{.O.MaxURI}}, max_body: {{.O.MaxBody}}, max_connections: {{.O.MaxConnections}}}
identity_providers:
  - name: idp
    issuer: "{{.Issuer}}"
    audiences: [gatehouse]
backends:
  - name: be
    instances: [{url: "{{.Backend}}"}]
    timeouts: {response_header: {{.O.ResponseHeader}}, response_idle: {{.O.ResponseIdle}}}
apis:
  - name: admin
    path_prefix: /admin
    backend: be
{{- if .O.AdminCaseInsensitive}}
    case_insensitive_paths: true
{{- end}}
    auth:
      credentials: [jwt]
      require: {groups: {any_of: [admins]}}
{{.O.ExtraAPI}}
  - name: public
    path_prefix: /
    backend: be
    auth: {anonymous: true}
`

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.ReadHeader, "5s")
	def(&o.Read, "10s")
	def(&o.Write, "10s")
	def(&o.Idle, "10s")
	def(&o.MaxHeaderBytes, "8KiB")
	def(&o.MaxURI, "2KiB")
	def(&o.MaxBody, "1KiB")
	def(&o.ResponseHeader, "5s")
	def(&o.MaxConnections, "0")
	def(&o.ResponseIdle, "60s")
	e := &env{t: t}
	iss, err := devissuer.New(devissuer.Options{Audience: "gatehouse"})
	if err != nil {
		t.Fatal(err)
	}
	issSrv := httptest.NewServer(iss.Handler())
	t.Cleanup(issSrv.Close)
	iss.SetURL(issSrv.URL)
	e.iss = iss
	be, err := securitytest.NewRawBackend()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(be.Close)
	e.be = be
	cert, key, pool := securitytest.SelfSignedCert(t, t.TempDir())
	e.pool = pool
	var b bytes.Buffer
	err = template.Must(template.New("cfg").Parse(envConfig)).Execute(&b, map[string]any{
		"O": o, "Cert": cert, "Key": key, "Issuer": issSrv.URL, "Backend": be.URL(),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = b.String()
	e.gw = securitytest.StartGateway(t, e.cfg)
	return e
}

// token mints an access token for subject with the given groups.
func (e *env) token(groups ...string) string {
	e.t.Helper()
	tok, err := e.iss.Mint(map[string]any{"sub": "mallory", "aud": "gatehouse", "groups": groups})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// reset forgets what the backend received and the access log.
func (e *env) reset() {
	e.be.Reset()
	e.gw.AccessLog.Reset()
}

// settle waits (briefly, polling) until the backend has received as
// many requests as the access log says were forwarded, and returns the
// access log. Access-log lines are written just after the response.
func (e *env) settle() []securitytest.AccessEntry {
	deadline := time.Now().Add(time.Second)
	for {
		acc := e.gw.Access()
		if len(completed(acc)) == len(e.be.Requests()) || time.Now().After(deadline) {
			return acc
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// completed lists "METHOD path" of the access-log entries that were
// forwarded and not cut off by the gateway while it streamed the body
// (400 for a malformed body, 413 for one over the limit, 499 for a client
// that left): those are the requests the backend must have received whole.
func completed(acc []securitytest.AccessEntry) []string {
	var out []string
	for _, a := range acc {
		if a.Forwarded() && a.Status != 400 && a.Status != 413 && a.Status != 499 {
			out = append(out, a.Method+" "+a.Path)
		}
	}
	return out
}

// checkForwarded compares what the backend received with what the access
// log says was forwarded. It returns the number of bypasses (an /admin
// request reached the backend without an admin token) and of
// desynchronizations (ambiguous framing at the backend, or requests that
// differ from the forwarded ones).
func (e *env) checkForwarded(t testing.TB, acc []securitytest.AccessEntry) (bypasses, desyncs int) {
	t.Helper()
	if p := e.be.Problems(); len(p) > 0 {
		desyncs++
		t.Errorf("the backend received ambiguous framing: %v", p)
	}
	var received []string
	for _, r := range e.be.Requests() {
		path, _, _ := strings.Cut(r.Target, "?")
		if dec, err := url.PathUnescape(path); err == nil {
			path = dec // the access log holds the decoded path
		}
		received = append(received, r.Method+" "+path)
		if underAdmin(path, false) && r.Header.Get("X-Gatehouse-Groups") != "admins" {
			bypasses++
			t.Errorf("an unauthorized admin request reached the backend: %s %s", r.Method, r.Target)
		}
	}
	forwarded := completed(acc)
	if strings.Join(received, "|") != strings.Join(forwarded, "|") {
		desyncs++
		t.Errorf("backend received %q; the access log says %q were forwarded", received, forwarded)
	}
	return bypasses, desyncs
}

// crlf turns "\n" into "\r\n", for readable raw requests.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }
