package gateway_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// The dashboard's client secret is resolved with the compile, like every
// other secret: the snapshot holds its value, and a file holding it is
// watched.
func TestCompile_DashboardClientSecret(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dashboard-secret")
	if err := os.WriteFile(file, []byte("dash-secret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	compile := func(ref string) (*gateway.Snapshot, error) {
		doc, diags := config.Parse("gatehouse.yaml", []byte(`
observability:
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
	if got := snap.DashboardClientSecret().Reveal(); got != "dash-secret-from-file" {
		t.Errorf("client secret %q", got)
	}
	abs, _ := filepath.Abs(file)
	watched := false
	for _, f := range snap.SecretFiles() {
		watched = watched || f == abs
	}
	if !watched {
		t.Errorf("%s is not among the files watched: %q", abs, snap.SecretFiles())
	}
	if _, err := compile("${env:DASHBOARD_SECRET_UNSET}"); err == nil {
		t.Error("an unset secret compiled")
	}
}
