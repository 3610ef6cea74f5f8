package devmode

import (
	"context"

	"github.com/gatehouse-dev/gatehouse/internal/admin"
	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// The dashboard of `gatehouse dev`: people sign in through the built-in
// issuer's authorization code flow (a page to pick a demo user); the pages
// show the demo's real state, kept in its throw-away store.

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

// seedDashboard puts a consumer in the demo's store for a newcomer to try
// key rotation on, from the dashboard or the admin API.
func seedDashboard(ctx context.Context, srv *server.Server) error {
	_, _, err := srv.AdminAPI().CreateConsumer(ctx, "gatehouse dev", admin.NewConsumer{
		Name: "sample-app", Groups: []string{"partners"}, Scopes: []string{"orders:read"},
	})
	return err
}
