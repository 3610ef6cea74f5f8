package server

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

type recordedAudit struct{ recs []store.AuditRecord }

func (l *recordedAudit) AppendAudit(_ context.Context, r store.AuditRecord) (store.AuditRecord, error) {
	r.Seq = int64(len(l.recs) + 1)
	l.recs = append(l.recs, r)
	return r, nil
}

func (l *recordedAudit) ListAudit(context.Context, int64, int) ([]store.AuditRecord, error) {
	return l.recs, nil
}

// A dashboard sign-in refused for want of a role is recorded as denied,
// not as a success.
func TestDashboardAudit_RefusedSignInIsDenied(t *testing.T) {
	log := &recordedAudit{}
	r := auditRecorder{rec: audit.NewRecorder(log, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)}
	r.Append("ann@example.com", "login", "dashboard", "role viewer")
	r.Append("bob@example.com", "login.denied", "dashboard", "no dashboard role")
	r.Append("ann@example.com", "logout", "dashboard", "")
	want := []string{store.OutcomeSuccess, store.OutcomeDenied, store.OutcomeSuccess}
	if len(log.recs) != len(want) {
		t.Fatalf("%d records, want %d", len(log.recs), len(want))
	}
	for i, rec := range log.recs {
		if rec.Outcome != want[i] {
			t.Errorf("%s: outcome %q, want %q", rec.Action, rec.Outcome, want[i])
		}
	}
}
