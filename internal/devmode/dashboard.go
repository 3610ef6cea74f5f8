package devmode

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/internal/dashboard"
	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
)

// The dashboard of `gatehouse dev`: people sign in through the built-in
// issuer's authorization code flow (a page to pick a demo user), and the
// consumers page works on an in-memory key store whose changes go to an
// in-memory audit log.

// dashboardClient is the dashboard's OIDC client at the development
// issuer: public (PKCE, no secret), any loopback redirect URI.
var dashboardClient = devissuer.Client{ID: "gatehouse-dashboard"}

// dashboardUsers are the people who can sign in to the dashboard; the
// configuration maps the group admins to the admin role and staff to
// viewer.
var dashboardUsers = []devissuer.User{
	{Subject: "alice", Name: "Alice Admin", Email: "alice@example.com", Groups: []string{"admins", "staff"}},
	{Subject: "bob", Name: "Bob Viewer", Email: "bob@example.com", Groups: []string{"staff"}},
}

// dashboardState makes the in-memory audit log and key store, with the
// configuration's consumer (read-only) and one consumer to try rotation on.
func (e *Env) dashboardState() {
	e.Audit = dashboard.NewMemoryAudit(nil, 0)
	e.Consumers = dashboard.NewMemoryConsumers(nil, e.Audit)
	e.Consumers.Seed(dashboard.Consumer{Name: "demo-partner", Groups: []string{"partners"}, Scopes: []string{"orders:read"},
		Keys: []dashboard.Key{{Slot: "primary", Fingerprint: "(config)"}}, ReadOnly: true})
	_, _ = e.Consumers.Create(context.Background(), "gatehouse dev", dashboard.NewConsumer{
		Name: "sample-app", Groups: []string{"partners"}, Scopes: []string{"orders:read"},
	})
}
