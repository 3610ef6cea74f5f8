package postgres_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/store/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

// serverCertificate returns the test server's certificate file and a
// host name it is valid for, or skips the test when the server has no
// TLS or its certificate cannot be read here.
func serverCertificate(t *testing.T, base string) (file, host string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var on string
	if err := conn.QueryRow(ctx, "SHOW ssl").Scan(&on); err != nil || on != "on" {
		t.Skipf("the test server has no TLS (ssl = %q): the TLS test needs it", on)
	}
	if err := conn.QueryRow(ctx, "SHOW ssl_cert_file").Scan(&file); err != nil {
		t.Skipf("the server's certificate file is not known: %v", err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Skipf("the server's certificate %s cannot be read here: %v", file, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Skipf("%s holds no PEM certificate", file)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Skipf("%s: %v", file, err)
	}
	if !cert.IsCA && cert.Subject.String() != cert.Issuer.String() {
		t.Skipf("the server's certificate is issued by %s, whose CA is not known here", cert.Issuer)
	}
	if len(cert.DNSNames) == 0 {
		t.Skip("the server's certificate names no DNS host")
	}
	return file, cert.DNSNames[0]
}

// The store speaks TLS to PostgreSQL as libpq's URL parameters say:
// verify-full with the server's CA opens it (and its connections are
// encrypted); another CA, or a host the certificate does not name, is
// refused with the reason, before any query.
func TestTLS_VerifiesTheServer(t *testing.T) {
	base := server(t)
	ca, host := serverCertificate(t, base)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	with := func(host, rootCert string) string {
		v := *u
		v.Host = host + ":" + u.Port()
		q := v.Query()
		q.Set("sslmode", "verify-full")
		q.Set("sslrootcert", rootCert)
		q.Set("application_name", "gatehouse-tls-test")
		v.RawQuery = q.Encode()
		return v.String()
	}
	schema := newSchema(t, base)
	s, err := postgres.Open(context.Background(), postgres.Options{URL: with(host, ca), Schema: schema})
	if err != nil {
		t.Fatalf("verify-full against the server's own CA: %v", err)
	}
	defer s.Close()
	if _, err := s.ListInstances(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	// Every connection of the store is encrypted.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var total, encrypted int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.application_name = 'gatehouse-tls-test'`).Scan(&total, &encrypted); err != nil {
		t.Fatal(err)
	}
	if total == 0 || encrypted != total {
		t.Fatalf("%d of the store's %d connections are encrypted", encrypted, total)
	}

	other := testpki.NewCA(t, "not the server's CA").WriteFile(t, t.TempDir(), "other")
	for name, c := range map[string]struct{ url, want string }{
		"another CA":        {with(host, other), "certificate signed by unknown authority"},
		"a host not in it":  {with("127.0.0.2", ca), "127.0.0.2"},
		"a CA file missing": {with(host, "/nonexistent/ca.pem"), "/nonexistent/ca.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			s, err := postgres.Open(ctx, postgres.Options{URL: c.url, Schema: schema})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
			if pw, ok := u.User.Password(); ok && pw != "" && strings.Contains(err.Error(), pw) {
				t.Fatal("the error holds the password")
			}
		})
	}
}
