package sqlite_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/store/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Two handles on one file stand for two processes on one store (the
// embedded store is for one gateway, but its tools read it while the
// gateway runs, and the suite's cases hold for it too).
func TestSuiteShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		dir := t.TempDir()
		a, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
		if err != nil {
			a.Close()
			t.Fatal(err)
		}
		return a, b
	})
}

func TestOpen_KeepsDataAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := store.Instance{Service: "orders", ID: "10.0.0.1:80", Scheme: "http", Address: "10.0.0.1", Port: 80, Weight: 1,
		Expires: time.Now().Add(time.Minute)}
	if err := s.PutInstance(ctx, in); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetInstance(ctx, "orders", in.ID); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
}

// An unusable data directory is a clear error at start: no panic, and
// nothing already there is changed.
func TestOpen_UnusableDataDirIsAClearError(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	file := filepath.Join(base, "a-file")
	os.WriteFile(file, []byte("x"), 0o600)
	notDB := filepath.Join(base, "not-a-db")
	os.MkdirAll(notDB, 0o700)
	garbage := bytes.Repeat([]byte("this is not a database "), 200)
	os.WriteFile(filepath.Join(notDB, sqlite.FileName), garbage, 0o600)
	dbIsDir := filepath.Join(base, "db-is-dir")
	os.MkdirAll(filepath.Join(dbIsDir, sqlite.FileName), 0o700)

	for _, tc := range []struct {
		name, dir, want string
	}{
		{"data dir is a file", file, "not a directory"},
		{"parent is a file", filepath.Join(file, "sub"), "cannot be created"},
		{"database is not a database", notDB, "not a"},
		{"database is a directory", dbIsDir, "is a directory, not a database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqlite.Open(ctx, tc.dir, sqlite.Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "storage.data_dir") {
				t.Fatalf("error %q does not say %q and name storage.data_dir", err, tc.want)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(notDB, sqlite.FileName)); !bytes.Equal(b, garbage) {
		t.Fatal("a file that is not a database was changed")
	}
}

func TestOpen_UnwritableDataDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: permissions do not stop root from writing")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	os.MkdirAll(dir, 0o500)
	_, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "is not writable") {
		t.Fatalf("error = %v", err)
	}
}

// A store written by a newer gatehouse is refused and left as it is.
func TestOpen_RefusesNewerSchemaAndKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.AppendAudit(ctx, store.AuditRecord{Actor: "a", Action: "b", Target: "c", Outcome: "success"})
	s.Close()
	raw := openRaw(t, dir)
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, applied_ns) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	before, _ := os.ReadFile(filepath.Join(dir, sqlite.FileName))

	_, err = sqlite.Open(ctx, dir, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this gatehouse") {
		t.Fatalf("error = %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, sqlite.FileName))
	if !bytes.Equal(before, after) {
		t.Fatal("the refused store was changed")
	}
}

func TestOpen_MustExist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := sqlite.Open(context.Background(), dir, sqlite.Options{MustExist: true})
	if err == nil || !strings.Contains(err.Error(), "holds no store") {
		t.Fatalf("error = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("MustExist created the directory")
	}
}

// The audit table refuses updates and deletes through SQL; only someone
// who edits the file around the store can change it (and audit verify
// finds that).
func TestAuditLog_IsAppendOnlyInSQL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := sqlite.Open(ctx, dir, sqlite.Options{})
	s.AppendAudit(ctx, store.AuditRecord{Actor: "a", Action: "b", Target: "c", Outcome: "success"})
	s.Close()
	raw := openRaw(t, dir)
	defer raw.Close()
	for _, q := range []string{`UPDATE audit_log SET actor = 'x'`, `DELETE FROM audit_log`} {
		if _, err := raw.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v", q, err)
		}
	}
}
