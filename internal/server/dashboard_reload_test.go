package server_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

// dashboardBrowser signs in to the dashboard of a started server through
// a development issuer. The configured redirect URL names a placeholder
// address (the admin listener's port is not known before it starts), so
// the browser follows the provider's redirect to the admin listener.
type dashboardBrowser struct {
	t     *testing.T
	c     *http.Client
	admin string
}

const placeholderRedirect = "http://127.0.0.1:9/ui/callback"

// devProvider serves a development issuer that knows the dashboard's
// client and alice, of group ops, until the test ends. configure, when
// set, adjusts the server before it starts; with useTLS it starts with a
// certificate of httptest's own.
func devProvider(t *testing.T, useTLS bool, configure func(*httptest.Server)) *httptest.Server {
	t.Helper()
	iss, err := devissuer.New(devissuer.Options{
		Clients: []devissuer.Client{{ID: "dash"}},
		Users:   []devissuer.User{{Subject: "alice", Name: "Alice", Groups: []string{"ops"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(iss.Handler())
	if configure != nil {
		configure(srv)
	}
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	iss.SetURL(srv.URL)
	return srv
}

// dashboardOIDC is the observability block of a dashboard that signs in
// with issuer, trusting caFile, with the given role values.
func dashboardOIDC(issuer, caFile, admin, viewer string) string {
	return fmt.Sprintf(`observability:
  dashboard:
    oidc:
      issuer: %q
      client_id: dash
      redirect_url: %q
      ca_file: %q
      roles: {admin: [%s], viewer: [%s]}
`, issuer, placeholderRedirect, caFile, admin, viewer)
}

func newDashboardBrowser(t *testing.T, admin string) *dashboardBrowser {
	jar, _ := cookiejar.New(nil)
	return &dashboardBrowser{t: t, admin: admin, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *dashboardBrowser) get(u string) (int, string, string) {
	b.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.admin + u
	}
	res, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Location"), string(body)
}

func (b *dashboardBrowser) signIn(subject string) {
	b.t.Helper()
	code, loc, body := b.get("/ui/login/start?return=/ui/apis")
	if code != http.StatusFound {
		b.t.Fatalf("login start: %d %s", code, body)
	}
	auth, _ := url.Parse(loc)
	q := auth.Query()
	q.Set("login_hint", subject)
	auth.RawQuery = q.Encode()
	if code, loc, body = b.get(auth.String()); code != http.StatusFound || !strings.HasPrefix(loc, placeholderRedirect) {
		b.t.Fatalf("authorize: %d %s %s", code, loc, body)
	}
	if code, loc, body = b.get(b.admin + strings.TrimPrefix(loc, "http://127.0.0.1:9")); code != http.StatusFound {
		b.t.Fatalf("callback: %d %s %s", code, loc, body)
	}
}

// role returns the role the dashboard shows on its APIs page, or "" when
// it sends the browser to sign in.
func (b *dashboardBrowser) role() string {
	b.t.Helper()
	code, loc, body := b.get("/ui/apis")
	switch {
	case code == http.StatusOK:
		for _, r := range []string{"admin", "viewer"} {
			if strings.Contains(body, `<span class="badge">`+r+`</span>`) {
				return r
			}
		}
		b.t.Fatalf("/ui/apis shows no role: %s", body)
	case code/100 == 3 && strings.Contains(loc, "/ui/login"):
		return ""
	}
	b.t.Fatalf("/ui/apis: %d %s %s", code, loc, body)
	return ""
}

// A reload applies the dashboard's settings: a role taken away is gone at
// once (the sessions of the old settings end), a replaced CA bundle is
// read, and the dashboard can be turned off and on. A reload that leaves
// them alone keeps whoever is signed in.
func TestServer_ReloadAppliesTheDashboardSettings(t *testing.T) {
	issSrv := devProvider(t, false, nil)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer be.Close()

	dir := t.TempDir()
	caFile := testpki.NewCA(t, "provider CA").WriteFile(t, dir, "provider-ca.pem")
	file := filepath.Join(dir, "gatehouse.yaml")
	oidc := func(admin, viewer string) string { return dashboardOIDC(issSrv.URL, caFile, admin, viewer) }
	writeConfig(t, file, be.URL, oidc("ops", ""))
	s := start(t, file)
	ctx := context.Background()
	reload := func(extra string) {
		t.Helper()
		writeConfig(t, file, be.URL, extra)
		if err := s.srv.Reload(ctx, "test"); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}

	b := newDashboardBrowser(t, s.admin)
	b.signIn("alice")
	if r := b.role(); r != "admin" {
		t.Fatalf("signed in as %q, want admin", r)
	}
	// Nothing of the dashboard's changed: the session stays.
	reload(oidc("ops", "") + "  tracing: {enabled: false}\n")
	if r := b.role(); r != "admin" {
		t.Fatalf("after a reload that leaves the dashboard alone: %q, want admin", r)
	}
	// ops is no longer an admin group: the admin's session ends at once,
	// and signing in again gives the role the new settings give.
	reload(oidc("", "ops"))
	if r := b.role(); r != "" {
		t.Fatalf("after the admin role was taken away: %q, want a new sign-in", r)
	}
	b.signIn("alice")
	if r := b.role(); r != "viewer" {
		t.Fatalf("signed in again as %q, want viewer", r)
	}
	// The same path, another CA bundle: read again, and the dashboard
	// that trusted the old one is gone with its sessions.
	testpki.NewCA(t, "another provider CA").WriteFile(t, dir, "provider-ca.pem")
	reload(oidc("", "ops"))
	if r := b.role(); r != "" {
		t.Fatalf("after the provider's CA bundle changed: %q, want a new sign-in", r)
	}
	// An unreadable bundle refuses the reload, naming the key; the
	// dashboard in force keeps serving.
	b.signIn("alice")
	os.Remove(caFile)
	writeConfig(t, file, be.URL, oidc("", "ops"))
	if err := s.srv.Reload(ctx, "test"); err == nil || !strings.Contains(err.Error(), "observability.dashboard.oidc.ca_file") {
		t.Fatalf("reload with a missing ca_file: %v", err)
	}
	if r := b.role(); r != "viewer" {
		t.Fatalf("after a refused reload: %q, want viewer", r)
	}
	// Off, then on without sign-in.
	reload("")
	if code, _, body := b.get("/ui/"); code != http.StatusNotFound || !strings.Contains(body, "The dashboard is off") {
		t.Fatalf("/ui/ after the dashboard was removed: %d %s", code, body)
	}
	reload("observability:\n  dashboard: {insecure_local: true}\n")
	if code, _, body := b.get("/ui/apis"); code != http.StatusOK || !strings.Contains(body, "gatehouse.yaml:") {
		t.Fatalf("/ui/apis after insecure_local was turned on: %d %s", code, body)
	}
}

// With a provider whose certificate only ca_file vouches for, sign-in
// works: discovery, the token exchange and the keys' fetch all trust the
// bundle (the keys' fetch used the system roots, so the ID token could
// not be verified). And a dashboard that a reload replaces lets go of its
// connections to the provider.
func TestServer_DashboardWithAPrivateCAProvider(t *testing.T) {
	var open atomic.Int64
	issSrv := devProvider(t, true, func(srv *httptest.Server) {
		srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		}
	})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer be.Close()

	dir := t.TempDir()
	caFile := filepath.Join(dir, "provider-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "gatehouse.yaml")
	oidc := func(viewer string) string { return dashboardOIDC(issSrv.URL, caFile, "ops", viewer) }
	writeConfig(t, file, be.URL, oidc(""))
	s := start(t, file)

	b := newDashboardBrowser(t, s.admin)
	b.c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: issSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}}
	b.signIn("alice") // the dashboard reads discovery and keys, and exchanges the code
	if r := b.role(); r != "admin" {
		t.Fatalf("signed in as %q, want admin", r)
	}
	b.c.CloseIdleConnections() // the browser's own
	withDashboard := open.Load()
	if withDashboard == 0 {
		t.Fatal("the dashboard keeps no connection to the provider; nothing to check")
	}
	writeConfig(t, file, be.URL, oidc("guests"))
	if err := s.srv.Reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return open.Load() == 0 })
}
