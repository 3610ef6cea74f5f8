package server

import (
	"io"
	"log/slog"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/dashboard"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/sqlite"
)

// The dashboard's events reach the audit log with their outcome: a
// sign-in refused for want of a role is denied, not a success.
func TestDashboardAudit_RefusedSignInIsDenied(t *testing.T) {
	st, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := auditRecorder{rec: audit.NewRecorder(st, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)}
	r.Append("ann@example.com", "login", "dashboard", "", "role viewer")
	r.Append("bob@example.com", "login.denied", "dashboard", dashboard.OutcomeDenied, "no dashboard role")
	r.Append("ann@example.com", "logout", "dashboard", "", "")
	recs, err := st.ListAudit(t.Context(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{store.OutcomeSuccess, store.OutcomeDenied, store.OutcomeSuccess}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, rec := range recs {
		if rec.Outcome != want[i] {
			t.Errorf("%s: outcome %q, want %q", rec.Action, rec.Outcome, want[i])
		}
	}
}
