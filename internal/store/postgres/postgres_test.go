package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/store/storetest"
)

// server returns the test server's URL, or skips the test.
func server(t *testing.T) string {
	t.Helper()
	u := os.Getenv("GATEHOUSE_TEST_POSTGRES_URL")
	if u == "" {
		t.Skip("GATEHOUSE_TEST_POSTGRES_URL is not set: the PostgreSQL store tests need a server (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return u
}

// exec runs one statement on the test server outside any store.
func exec(t *testing.T, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// newSchema names a schema of the test's own, dropped when it ends.
func newSchema(t *testing.T, url string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "gh_test_" + hex.EncodeToString(b)
	t.Cleanup(func() { exec(t, url, "DROP SCHEMA IF EXISTS "+name+" CASCADE") })
	return name
}

func open(t *testing.T, url, schema string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Options{URL: url, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSuite(t *testing.T) {
	url := server(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, url, newSchema(t, url)) })
}

func TestSuiteShared(t *testing.T) {
	url := server(t)
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		schema := newSchema(t, url)
		return open(t, url, schema), open(t, url, schema)
	})
}

// Gateways that start together against an empty schema all come up, and
// the migrations are applied once.
func TestOpen_ConcurrentStartsMigrateOnce(t *testing.T) {
	url := server(t)
	schema := newSchema(t, url)
	const n = 4
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(context.Background(), postgres.Options{URL: url, Schema: schema})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, max int
	if err := conn.QueryRow(ctx, "SELECT count(*), max(version) FROM "+schema+".schema_migrations").Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != postgres.SchemaVersion || max != postgres.SchemaVersion {
		t.Fatalf("schema_migrations holds %d rows up to %d, want each of 1..%d once", rows, max, postgres.SchemaVersion)
	}
	if err := stores[0].PutInstance(ctx, store.Instance{Service: "s", ID: "10.0.0.1:80", Scheme: "http", Address: "10.0.0.1", Port: 80, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	if got, err := stores[n-1].ListInstances(ctx, ""); err != nil || len(got) != 1 {
		t.Fatalf("another start lists %v, %v", got, err)
	}
}

// A schema written by a newer Gatehouse is refused, and left as it is.
func TestOpen_RefusesANewerSchema(t *testing.T) {
	url := server(t)
	schema := newSchema(t, url)
	s := open(t, url, schema)
	ctx := context.Background()
	if _, err := s.AddConfigRevision(ctx, store.ConfigRevision{Version: "v1", Source: "start"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	exec(t, url, "INSERT INTO "+schema+".schema_migrations (version, applied_ns) VALUES (999, 0)")
	_, err := postgres.Open(ctx, postgres.Options{URL: url, Schema: schema})
	if err == nil || !strings.Contains(err.Error(), "schema version 999, newer than this gatehouse knows") {
		t.Fatalf("Open of a newer schema = %v", err)
	}
	exec(t, url, "DELETE FROM "+schema+".schema_migrations WHERE version = 999")
	s = open(t, url, schema)
	defer s.Close()
	if revs, err := s.ListConfigRevisions(ctx, 10); err != nil || len(revs) != 1 || revs[0].Version != "v1" {
		t.Fatalf("after the refusal the store holds %+v, %v", revs, err)
	}
}

// A server that does not answer fails Open within the connect timeout,
// with an error that names the address.
func TestOpen_UnreachableServerIsAClearErrorInTime(t *testing.T) {
	server(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	start := time.Now()
	_, err = postgres.Open(context.Background(), postgres.Options{URL: "postgres://gatehouse@" + addr + "/gatehouse?sslmode=disable", ConnectTimeout: time.Second})
	if err == nil {
		t.Fatal("Open succeeded with no server")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Open took %v, want within the connect timeout (1s) and a second", took)
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "connecting to PostgreSQL") {
		t.Fatalf("error %q does not say what failed where", err)
	}
}

// No error of Open repeats a password, given in Options or in the URL.
func TestOpen_ErrorsNeverHoldThePassword(t *testing.T) {
	url := server(t)
	const secret = "s3cret-must-not-leak"
	bad := strings.Replace(url, "/test", "/no_such_database_gh", 1)
	_, err := postgres.Open(context.Background(), postgres.Options{URL: bad, Password: secret})
	if err == nil {
		t.Fatal("Open of a database that does not exist succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error holds the password: %v", err)
	}
	withPassword := strings.Replace(bad, "postgres://postgres@", "postgres://postgres:"+secret+"@", 1)
	_, err = postgres.Open(context.Background(), postgres.Options{URL: withPassword + "&connect_timeout=bad"})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("an unusable URL with a password: %v", err)
	}
}

func TestOpen_RefusesABadSchemaName(t *testing.T) {
	url := server(t)
	for _, name := range []string{"Gatehouse", "1abc", "a-b", "x; DROP TABLE y", strings.Repeat("a", 64)} {
		if _, err := postgres.Open(context.Background(), postgres.Options{URL: url, Schema: name}); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("schema %q: %v", name, err)
		}
	}
}

// Text PostgreSQL cannot hold as it is gets a clear error, never a
// changed value.
func TestText_NULAndInvalidUTF8AreRefusedClearly(t *testing.T) {
	url := server(t)
	s := open(t, url, newSchema(t, url))
	defer s.Close()
	ctx := context.Background()
	err := s.CreateConsumer(ctx, store.Consumer{Name: "ac\x00me"})
	if err == nil || !strings.Contains(err.Error(), "consumer name contains a NUL byte") {
		t.Fatalf("a NUL in a consumer name: %v", err)
	}
	_, err = s.AppendAudit(ctx, store.AuditRecord{Actor: "x", Action: "test", Detail: "bad \xff byte"})
	if err == nil || !strings.Contains(err.Error(), "audit detail is not valid UTF-8") {
		t.Fatalf("invalid UTF-8 in an audit detail: %v", err)
	}
	if recs, _ := s.ListAudit(ctx, 0, 10); len(recs) != 0 {
		t.Fatalf("a refused record was written: %+v", recs)
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		t.Fatal("the refusal is mistaken for a store outcome")
	}
	// A refused row refuses its whole batch; Data is bytes, NULs and all.
	good := store.UpstreamHour{Process: "p1", API: "orders", Operation: "create", Hour: 1, Data: []byte{0, 0xff}}
	err = s.PutUpstreamHours(ctx, []store.UpstreamHour{good, {Process: "p\x00", API: "orders", Operation: "create", Hour: 1}})
	if err == nil || !strings.Contains(err.Error(), "process name contains a NUL byte") {
		t.Fatalf("a NUL in an upstream hour's process: %v", err)
	}
	err = s.PutUpstreamHours(ctx, []store.UpstreamHour{good, {Process: "p1", API: "orders", Operation: "cr\xffeate", Hour: 1}})
	if err == nil || !strings.Contains(err.Error(), "operation name is not valid UTF-8") {
		t.Fatalf("invalid UTF-8 in an upstream hour's operation: %v", err)
	}
	if rows, err := s.ListUpstreamHours(ctx, 0); err != nil || len(rows) != 0 {
		t.Fatalf("a refused batch was written: %+v, %v", rows, err)
	}
}

func TestDescribe_NamesTheDatabaseNotTheUser(t *testing.T) {
	url := server(t)
	schema := newSchema(t, url)
	s := open(t, url, schema)
	defer s.Close()
	d := s.Describe()
	if !strings.HasPrefix(d, "postgres ") || !strings.HasSuffix(d, " schema "+schema) || strings.Contains(d, "@") {
		t.Fatalf("Describe() = %q", d)
	}
}

// A tool (gatehouse audit verify -c) opens the gateways' store with
// NoMigrate: it creates no schema where there is none, reads with a role
// that may only SELECT (which the migration's lock and CREATE SCHEMA
// would refuse), and names a schema of another version instead of
// changing it.
func TestNoMigrate_ReadsWithSelectAloneAndChangesNothing(t *testing.T) {
	pgURL := server(t)
	schema := newSchema(t, pgURL)
	ctx := context.Background()
	_, err := postgres.Open(ctx, postgres.Options{URL: pgURL, Schema: schema, NoMigrate: true})
	if err == nil || !strings.Contains(err.Error(), "no Gatehouse store here") {
		t.Fatalf("an empty schema: %v", err)
	}
	if schemaExists(t, pgURL, schema) {
		t.Fatal("opening with NoMigrate created the schema")
	}

	s := open(t, pgURL, schema)
	if _, err := s.AppendAudit(ctx, store.AuditRecord{Time: time.Now(), Actor: "admin", Action: "test"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	b := make([]byte, 4)
	rand.Read(b)
	role := "gh_ro_" + hex.EncodeToString(b)
	exec(t, pgURL, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() { exec(t, pgURL, "DROP OWNED BY "+role+"; DROP ROLE "+role) })
	exec(t, pgURL, "GRANT USAGE ON SCHEMA "+schema+" TO "+role+"; GRANT SELECT ON ALL TABLES IN SCHEMA "+schema+" TO "+role)
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	if _, err := postgres.Open(ctx, postgres.Options{URL: u.String(), Schema: schema}); err == nil {
		t.Fatal("a gateway's open (with the migration) succeeded with SELECT alone; the test proves nothing")
	}
	ro, err := postgres.Open(ctx, postgres.Options{URL: u.String(), Schema: schema, NoMigrate: true})
	if err != nil {
		t.Fatalf("with SELECT alone: %v", err)
	}
	recs, err := ro.ListAudit(ctx, 0, 10)
	ro.Close()
	if err != nil || len(recs) != 1 || recs[0].Action != "test" {
		t.Fatalf("the audit log read with SELECT alone: %v, %v", recs, err)
	}

	exec(t, pgURL, fmt.Sprintf("DELETE FROM %s.schema_migrations WHERE version = %d", schema, postgres.SchemaVersion))
	_, err = postgres.Open(ctx, postgres.Options{URL: pgURL, Schema: schema, NoMigrate: true})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("schema version %d, older than this gatehouse's (%d)", postgres.SchemaVersion-1, postgres.SchemaVersion)) {
		t.Fatalf("an older schema: %v", err)
	}
}

func schemaExists(t *testing.T, pgURL, schema string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}
