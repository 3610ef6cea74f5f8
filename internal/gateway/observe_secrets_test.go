package gateway_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

// The dashboard's client secret and the tracing headers are resolved with
// the compile, like every other secret: the snapshot holds the client
// secret's value, and the files holding them are watched.
func TestCompile_ObservabilitySecrets(t *testing.T) {
	dir := t.TempDir()
	file, header := filepath.Join(dir, "dashboard-secret"), filepath.Join(dir, "collector-key")
	for _, f := range []string{file, header} {
		if err := os.WriteFile(f, []byte("value-of-"+filepath.Base(f)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	compile := func(ref string) (*gateway.Snapshot, error) {
		doc, diags := config.Parse("gatehouse.yaml", []byte(`
observability:
  tracing:
    enabled: true
    endpoint: http://127.0.0.1:4318/v1/traces
    headers: {X-Api-Key: "${file:`+header+`}"}
  dashboard:
    oidc:
      issuer: https://login.example.com
      client_id: dash
      client_secret: "`+ref+`"
      redirect_url: https://admin.example.com/ui/callback
      roles: {claim: groups, admin: [admins]}
`))
		if diags != nil {
			t.Fatalf("parse: %v", diags)
		}
		snap, diags := gateway.Compile(context.Background(), doc, &gateway.Runtime{
			Logger:  slog.New(slog.DiscardHandler),
			Secrets: secret.Local{LookupEnv: func(string) (string, bool) { return "", false }},
		})
		if diags != nil {
			return nil, diags
		}
		return snap, nil
	}
	snap, err := compile("${file:" + file + "}")
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.DashboardClientSecret().Reveal(); got != "value-of-dashboard-secret" {
		t.Errorf("client secret %q", got)
	}
	for _, f := range []string{file, header} {
		abs, _ := filepath.Abs(f)
		if !slices.Contains(snap.SecretFiles(), abs) {
			t.Errorf("%s is not among the files watched: %q", abs, snap.SecretFiles())
		}
	}
	if _, err := compile("${env:DASHBOARD_SECRET_UNSET}"); err == nil {
		t.Error("an unset secret compiled")
	}
}

// The dashboard's provider CA bundle is read with the compile: an
// unreadable one is a problem at its key (validate and a reload report
// it), a readable one is in the snapshot for the dashboard to trust.
func TestCompile_DashboardCAFile(t *testing.T) {
	dir := t.TempDir()
	caFile := testpki.NewCA(t, "provider CA").WriteFile(t, dir, "ca.pem")
	compile := func(file string) (*gateway.Snapshot, config.Diagnostics) {
		doc, diags := config.Parse("gatehouse.yaml", []byte(`
observability:
  dashboard:
    oidc:
      issuer: https://login.example.com
      client_id: dash
      redirect_url: https://admin.example.com/ui/callback
      ca_file: `+file+`
      roles: {admin: [admins]}
`))
		if diags != nil {
			t.Fatalf("parse: %v", diags)
		}
		return gateway.Compile(context.Background(), doc, &gateway.Runtime{Logger: slog.New(slog.DiscardHandler)})
	}
	snap, diags := compile(caFile)
	if diags != nil {
		t.Fatal(diags)
	}
	want, _ := os.ReadFile(caFile)
	if pool, pem := snap.DashboardCA(); pool == nil || string(pem) != string(want) {
		t.Fatalf("DashboardCA() = %v, %d bytes; want the bundle's pool and bytes", pool, len(pem))
	}
	for name, content := range map[string]string{"missing.pem": "", "empty.pem": "no certificate here\n"} {
		file := filepath.Join(dir, name)
		if content != "" {
			os.WriteFile(file, []byte(content), 0o644)
		}
		_, diags := compile(file)
		if len(diags) != 1 || diags[0].Path != "observability.dashboard.oidc.ca_file" || !strings.Contains(diags[0].Msg, file) {
			t.Errorf("%s: diagnostics %v, want one at observability.dashboard.oidc.ca_file naming the file", name, diags)
		}
	}
}
