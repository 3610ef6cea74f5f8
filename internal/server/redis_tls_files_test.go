package server

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

// A certificate replaced before its key (the two files never change at
// the same instant) does not load: the previous pair stays in use, the
// failure is logged once for that version of the files, and the pair is
// taken once the key follows. The same for a CA bundle.
func TestRedisTLSFiles_APairHalfReplacedKeepsThePrevious(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	caFile := ca.WriteFile(t, dir, "ca")
	certFile, keyFile := ca.Client(t, "one").WriteFiles(t, dir, "client")
	var logs bytes.Buffer
	f, err := newRedisTLSFiles(&tls.Config{}, &config.RedisTLS{CAFile: caFile, ClientCertFile: certFile, ClientKeyFile: keyFile},
		time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	pool1, cert1 := f.current()
	two := ca.Client(t, "two")
	replace(t, certFile, two.CertPEM)
	for range 2 {
		if _, cert := f.current(); cert != cert1 {
			t.Fatal("a certificate without its key was taken")
		}
	}
	if n := strings.Count(logs.String(), "client certificate changed but does not load"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	replace(t, keyFile, two.KeyPEM)
	_, cert := f.current()
	if cert == cert1 || cert.Leaf.Subject.CommonName != "two" {
		t.Fatalf("the new pair was not taken: %v", cert.Leaf.Subject)
	}

	replace(t, caFile, []byte("-----BEGIN CERTIFICATE-----\nnot a certificate"))
	if pool, _ := f.current(); pool != pool1 {
		t.Fatal("a bundle that does not load replaced the one in use")
	}
	other := testpki.NewCA(t, "other")
	replace(t, caFile, other.CertPEM)
	if pool, _ := f.current(); pool == pool1 || !pool.Equal(other.Pool()) {
		t.Fatal("the new bundle was not taken")
	}
	if strings.Contains(logs.String(), "PRIVATE") {
		t.Fatal("key material in the log")
	}
}

// replace writes a file's new version with a modification time that
// differs from the old one's whatever the file system's resolution.
func replace(t *testing.T, name string, b []byte) {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(name), ".new")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(tmp, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// The Redis client's own messages reach the gateway's log, without the
// passwords: a new primary at info, the rest at debug.
func TestRedisLog_RedactedAndLevelled(t *testing.T) {
	var logs bytes.Buffer
	l := redisLog{logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), secrets: []string{"hunter2"}}
	l.Printf(t.Context(), "dial failed: %s\n", "AUTH hunter2 refused")
	l.Printf(t.Context(), "sentinel: new master=%q addr=%q", "mymaster", "127.0.0.1:7001")
	out := logs.String()
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "AUTH REDACTED refused") {
		t.Fatalf("not redacted:\n%s", out)
	}
	if !strings.Contains(out, `level=DEBUG msg="Redis client: dial failed`) || !strings.Contains(out, `level=INFO msg="Redis client: sentinel: new master`) {
		t.Fatalf("levels:\n%s", out)
	}
}
