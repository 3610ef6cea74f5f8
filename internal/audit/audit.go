// Package audit writes the audit log — who changed what, with the state
// before and after — to the store's hash-chained log, and verifies that
// chain. Secrets never enter a record: callers pass views of their
// objects without them.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Actions recorded in the log.
const (
	ActionInstanceRegister   = "instance.register"
	ActionInstanceDeregister = "instance.deregister"
	ActionInstanceExpire     = "instance.expire"
	ActionConsumerCreate     = "consumer.create"
	ActionConsumerDelete     = "consumer.delete"
	ActionKeyCreate          = "key.create"
	ActionKeyRotate          = "key.rotate"
	ActionKeyRevoke          = "key.revoke"
	ActionConfigReload       = "config.reload"
	ActionAdminDenied        = "admin.denied"
)

// ActorSystem is the actor of what the gateway does by itself (expiry,
// reloads from the file).
const ActorSystem = "system"

// Entry is what a caller records; the recorder adds the time, the
// sequence number and the hashes.
type Entry struct {
	Actor   string
	Action  string
	Target  string
	Outcome string
	Detail  string
	// Before and After are encoded as JSON; nil leaves them empty.
	Before, After any
}

// Recorder appends entries to an audit log. A nil *Recorder records
// nothing.
type Recorder struct {
	log    store.AuditLog
	logger *slog.Logger
	now    func() time.Time
}

// NewRecorder returns a recorder writing to log; now may be nil.
func NewRecorder(log store.AuditLog, logger *slog.Logger, now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{log: log, logger: logger, now: now}
}

// Record appends e. The change it describes has already happened, so a
// failure to record is not the caller's to undo: it is logged here, as an
// error, and returned for callers that want to report it.
func (r *Recorder) Record(ctx context.Context, e Entry) error {
	if r == nil {
		return nil
	}
	rec := store.AuditRecord{
		Time: r.now(), Actor: e.Actor, Action: e.Action, Target: e.Target,
		Outcome: e.Outcome, Detail: e.Detail,
		Before: encode(e.Before), After: encode(e.After),
	}
	if rec.Outcome == "" {
		rec.Outcome = store.OutcomeSuccess
	}
	// Record even when the request that caused it was cancelled.
	ctx = context.WithoutCancel(ctx)
	if _, err := r.log.AppendAudit(ctx, rec); err != nil {
		r.logger.Error("writing the audit log failed", "action", e.Action, "target", e.Target, "actor", e.Actor, "error", err)
		return fmt.Errorf("writing the audit log: %w", err)
	}
	return nil
}

func encode(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%q", "unencodable: "+err.Error())
	}
	return string(b)
}

// Format renders a record as one line for people:
// time #seq actor action target outcome [detail]. Actor and target come
// from callers (a token's subject, a path): a field with a space, a
// control character, a quote or nothing at all is quoted, so that no
// field can end the line or pose as another.
func Format(r store.AuditRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s #%d %s %s %s %s", r.Time.UTC().Format(time.RFC3339Nano), r.Seq,
		lineField(r.Actor), lineField(r.Action), lineField(r.Target), lineField(r.Outcome))
	if r.Detail != "" {
		fmt.Fprintf(&b, " %q", r.Detail)
	}
	if r.Before != "" {
		b.WriteString(" before=" + r.Before)
	}
	if r.After != "" {
		b.WriteString(" after=" + r.After)
	}
	return b.String()
}

// lineField is s as it is when it is one printable word, else quoted.
func lineField(s string) string {
	if s == "" {
		return `""`
	}
	for _, c := range s {
		if c == '"' || c == '\\' || !unicode.IsPrint(c) || unicode.IsSpace(c) {
			return strconv.Quote(s)
		}
	}
	return s
}
