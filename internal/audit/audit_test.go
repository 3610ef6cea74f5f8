package audit_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// memLog is an audit log whose records a test can tamper with.
type memLog struct{ recs []store.AuditRecord }

func (m *memLog) AppendAudit(_ context.Context, r store.AuditRecord) (store.AuditRecord, error) {
	r.Seq = int64(len(m.recs) + 1)
	if len(m.recs) > 0 {
		r.PrevHash = m.recs[len(m.recs)-1].Hash
	}
	r.Hash = store.AuditHash(r)
	m.recs = append(m.recs, r)
	return r, nil
}

func (m *memLog) ListAudit(_ context.Context, after int64, limit int) ([]store.AuditRecord, error) {
	var out []store.AuditRecord
	for _, r := range m.recs {
		if r.Seq > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func filled(t *testing.T, n int) *memLog {
	m := &memLog{}
	rec := audit.NewRecorder(m, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	for i := range n {
		err := rec.Record(context.Background(), audit.Entry{Actor: "key:ops", Action: audit.ActionInstanceRegister,
			Target: fmt.Sprintf("services/orders/instances/10.0.0.%d:80", i), After: map[string]int{"port": 80}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestVerify_NamesTheFirstAlteredOrRemovedRecord(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tamper  func(m *memLog)
		wantSeq int64
		wantMsg string
	}{
		{"intact", func(m *memLog) {}, 0, ""},
		{"one byte of a field", func(m *memLog) { m.recs[3].Actor = "key:opz" }, 4, "record 4 was altered"},
		{"after JSON", func(m *memLog) { m.recs[6].After = `{"port":81}` }, 7, "record 7 was altered"},
		{"altered and rehashed", func(m *memLog) {
			m.recs[2].Detail = "nothing to see"
			m.recs[2].Hash = store.AuditHash(m.recs[2])
		}, 3, "record 3 was altered"},
		{"removed in the middle", func(m *memLog) { m.recs = slices.Delete(m.recs, 4, 5) }, 5, "record 5 was removed"},
		{"first removed", func(m *memLog) { m.recs = m.recs[1:] }, 1, "record 1 was removed"},
		{"reordered", func(m *memLog) { m.recs[1], m.recs[2] = m.recs[2], m.recs[1] }, 2, "record 2 was removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := filled(t, 10)
			tc.tamper(m)
			res, err := audit.Verify(context.Background(), m, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantSeq == 0 {
				if res.Problem != nil || res.Records != 10 || res.HeadSeq != 10 {
					t.Fatalf("intact log: %+v", res)
				}
				return
			}
			if res.Problem == nil || res.Problem.Seq != tc.wantSeq || !strings.Contains(res.Problem.Msg, tc.wantMsg) {
				t.Fatalf("problem = %+v, want record %d: %q", res.Problem, tc.wantSeq, tc.wantMsg)
			}
		})
	}
}

func TestVerify_ExpectedHeadCatchesTruncation(t *testing.T) {
	m := filled(t, 10)
	head := audit.Head{Seq: 10, Hash: m.recs[9].Hash}
	if res, _ := audit.Verify(context.Background(), m, &head); res.Problem != nil {
		t.Fatalf("intact: %v", res.Problem)
	}
	m.recs = m.recs[:7]
	res, _ := audit.Verify(context.Background(), m, &head)
	if res.Problem == nil || res.Problem.Seq != 8 || !strings.Contains(res.Problem.Msg, "records 8 to 10 were removed") {
		t.Fatalf("truncated: %+v", res.Problem)
	}
	if _, err := audit.ParseHead("10:" + m.recs[0].Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.ParseHead("x:y"); err == nil {
		t.Fatal("ParseHead accepted garbage")
	}
}

func TestVerify_PagesThroughLongLogs(t *testing.T) {
	m := filled(t, 1203)
	m.recs[1100].Target = "elsewhere"
	res, _ := audit.Verify(context.Background(), m, nil)
	if res.Problem == nil || res.Problem.Seq != 1101 {
		t.Fatalf("problem = %+v", res.Problem)
	}
}

func TestAuditHash_FieldsCannotBleedIntoEachOther(t *testing.T) {
	a := store.AuditRecord{Seq: 1, Actor: "ab", Action: "c"}
	b := store.AuditRecord{Seq: 1, Actor: "a", Action: "bc"}
	if store.AuditHash(a) == store.AuditHash(b) {
		t.Fatal("moving a byte between fields kept the hash")
	}
}

// A record is one line whatever its fields hold: an actor or a target
// with a newline (a token's subject, a path from a caller) is quoted and
// cannot start a forged record of its own; plain words stay as they are.
func TestFormat_OneLinePerRecord(t *testing.T) {
	forged := "acme\n2026-11-29T12:00:01.000000000Z #80 system config.reload config success"
	line := audit.Format(store.AuditRecord{Seq: 7, Time: time.Unix(0, 0), Actor: "key:viewer\r", Action: "admin.denied", Target: forged, Outcome: "denied", Detail: "x\ny"})
	if strings.ContainsAny(line, "\r\n") {
		t.Fatalf("a record spans lines: %q", line)
	}
	if !strings.Contains(line, strconv.Quote(forged)) || !strings.Contains(line, `"key:viewer\r"`) {
		t.Fatalf("fields not quoted: %s", line)
	}
	plain := audit.Format(store.AuditRecord{Seq: 1, Time: time.Unix(0, 0), Actor: "ops", Action: "consumer.create", Target: "acme", Outcome: "success"})
	if plain != "1970-01-01T00:00:00Z #1 ops consumer.create acme success" {
		t.Fatalf("plain record: %q", plain)
	}
	if got := audit.Format(store.AuditRecord{Time: time.Unix(0, 0), Target: "a b"}); got != `1970-01-01T00:00:00Z #0 "" "" "a b" ""` {
		t.Fatalf("empty and spaced fields: %q", got)
	}
}
