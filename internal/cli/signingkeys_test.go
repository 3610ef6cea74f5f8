package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/postgres"
)

// Unpublishing a key removes it from the shared table, records who did
// it in the audit log, and says so; an unknown kid exits 1.
func TestSigningKeys_ListAndUnpublish(t *testing.T) {
	pgURL := os.Getenv("GATEHOUSE_TEST_POSTGRES_URL")
	if pgURL == "" {
		t.Skip("GATEHOUSE_TEST_POSTGRES_URL is not set: the published signing keys live in PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "gh_cli_" + hex.EncodeToString(b)
	ctx := context.Background()
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, pgURL)
		if err != nil {
			t.Errorf("dropping %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	})
	st, err := postgres.Open(ctx, postgres.Options{URL: pgURL, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	if err := st.PutPublishedKeys(ctx, []store.PublishedKey{
		{KID: "kid-a", Alg: "ES256", JWK: []byte(`{}`), Activates: now, Expires: now.Add(time.Hour)},
		{KID: "kid-b", Alg: "EdDSA", JWK: []byte(`{}`), Activates: now, Expires: now.Add(time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	cfg := fmt.Sprintf("storage:\n  postgres: {url: %q, schema: %s}\n", pgURL, schema)
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var out, errs bytes.Buffer
		code := Main(ctx, args, nil, &out, &errs)
		return code, out.String(), errs.String()
	}
	if code, out, errs := run("signing-keys", "list", "-c", file); code != 0 || !strings.Contains(out, "kid-a") || !strings.Contains(out, "kid-b") {
		t.Fatalf("list: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := run("signing-keys", "unpublish", "-c", file, "--actor", "ops@example.com", "kid-a"); code != 0 || !strings.Contains(out, "unpublished kid-a") {
		t.Fatalf("unpublish: %d\n%s%s", code, out, errs)
	}
	keys, err := st.ListPublishedKeys(ctx, time.Time{})
	if err != nil || len(keys) != 1 || keys[0].KID != "kid-b" {
		t.Fatalf("after unpublishing kid-a the store holds %+v, %v", keys, err)
	}
	recs, err := st.ListAudit(ctx, 0, 10)
	if err != nil || len(recs) != 1 || recs[0].Actor != "ops@example.com" || recs[0].Action != "signing_key.unpublish" || recs[0].Target != "signing_key/kid-a" {
		t.Fatalf("the audit log holds %+v, %v", recs, err)
	}
	if code, _, errs := run("signing-keys", "unpublish", "-c", file, "kid-a"); code != 1 || !strings.Contains(errs, "no published key kid-a") {
		t.Fatalf("unpublishing it again: %d %q", code, errs)
	}
	// Without storage.postgres nothing is published: the error says how
	// to revoke a single gateway's keys instead.
	plain := filepath.Join(t.TempDir(), "single.yaml")
	os.WriteFile(plain, []byte("storage: {data_dir: /tmp/x}\n"), 0o644)
	if code, _, errs := run("signing-keys", "list", "-c", plain); code == 0 || !strings.Contains(errs, "empty backend_identity.key_dir") {
		t.Fatalf("list without storage.postgres: %d %q", code, errs)
	}
}
