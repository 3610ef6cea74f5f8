package gateway_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
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
