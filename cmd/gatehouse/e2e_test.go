package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
)

// binary builds the gatehouse command once per test run.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "gatehouse-e2e")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "gatehouse")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func build(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func run(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(build(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestCLI_Validate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("backends:\n  - name: b\n    instances: [{url: \"http://127.0.0.1:1\"}]\napis:\n  - name: a\n    backend: b\n    auth: {anonymous: true}\n    max_bdy: 1MiB\n  - name: c\n    backend: nope\n    path_prefix: /c\n    auth: {anonymous: true}\n"), 0o644)
	out, code := run(t, "", "validate", bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		bad + `:8:5: apis[0].max_bdy: unknown key "max_bdy" (did you mean "max_body"?)`,
		bad + `:10:14: apis[1].backend: unknown backend "nope"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("backends:\n  - name: b\n    instances: [{url: \"http://127.0.0.1:1\"}]\napis:\n  - name: a\n    backend: b\n    auth: {anonymous: true}\n"), 0o644)
	if out, code := run(t, "", "validate", good); code != 0 || !strings.Contains(out, "ok (version ") {
		t.Fatalf("valid file: exit %d\n%s", code, out)
	}
}

func TestCLI_SchemaVersionHelpKeys(t *testing.T) {
	out, code := run(t, "", "schema")
	var schema map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &schema) != nil || schema["$schema"] == nil {
		t.Fatalf("schema: exit %d\n%.300s", code, out)
	}
	if out, code := run(t, "", "version"); code != 0 || !strings.HasPrefix(out, "gatehouse ") {
		t.Fatalf("version: %d %s", code, out)
	}
	for _, sub := range []string{"serve", "validate", "schema", "dev", "version", "keys", "register", "audit"} {
		if out, code := run(t, "", sub, "--help"); code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: exit %d\n%s", sub, code, out)
		}
	}
	out, code = run(t, "", "keys", "generate")
	if code != 0 || !strings.Contains(out, "key:    ghk_") || !strings.Contains(out, "sha256: ") {
		t.Fatalf("keys generate: %s", out)
	}
	sum := sha256.Sum256([]byte("ghk_abc"))
	if out, _ := run(t, "ghk_abc\n", "keys", "hash"); strings.TrimSpace(out) != hex.EncodeToString(sum[:]) {
		t.Fatalf("keys hash: %q", out)
	}
}

// gateway is a running gatehouse serve process.
type gateway struct {
	cmd    *exec.Cmd
	url    string
	admin  string
	stderr *lockedBuffer
	file   string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func serve(t *testing.T, cfg string, args ...string) *gateway {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "gatehouse.yaml")
	cfg += fmt.Sprintf("\nstorage: {data_dir: %q}\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(build(t), append([]string{"serve", "--config", file}, args...)...)
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gateway{cmd: cmd, stderr: &lockedBuffer{}, file: file}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var public, admin string
		for sc.Scan() {
			line := sc.Text()
			g.stderr.Write([]byte(line + "\n"))
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
				switch m["listener"] {
				case "public":
					public = m["address"].(string)
				case "admin":
					admin = m["address"].(string)
				}
				if public != "" && admin != "" {
					addrs <- [2]string{public, admin}
				}
			}
		}
	}()
	select {
	case a := <-addrs:
		g.url, g.admin = "http://"+a[0], "http://"+a[1]
	case <-time.After(20 * time.Second):
		t.Fatalf("gateway did not start:\n%s", g.stderr.String())
	}
	for range 100 {
		res, err := http.Get(g.admin + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return g
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway not ready:\n%s", g.stderr.String())
	return nil
}

func e2eConfig(issuer, backend string) string {
	return fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin: {address: "127.0.0.1:0"}
  timeouts: {shutdown: 10s}
identity_providers:
  - name: idp
    issuer: %q
    audiences: [gatehouse]
backends:
  - name: be
    instances: [{url: %q}]
apis:
  - name: orders
    path_prefix: /orders
    backend: be
    auth:
      credentials: [jwt]
      require: {scopes: {all_of: [orders:read]}}
`, issuer, backend)
}

func TestE2E_ServeReloadAndDrain(t *testing.T) {
	iss, _ := devissuer.New(devissuer.Options{Audience: "gatehouse"})
	issSrv := httptest.NewServer(iss.Handler())
	defer issSrv.Close()
	iss.SetURL(issSrv.URL)
	var seen atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		if r.URL.Path == "/orders/slow" {
			time.Sleep(time.Second)
		}
		fmt.Fprintf(w, "sub=%s rid=%s", r.Header.Get("X-Gatehouse-Subject"), r.Header.Get("X-Request-Id"))
	}))
	defer backend.Close()

	g := serve(t, e2eConfig(issSrv.URL, backend.URL))
	tok, _ := iss.Mint(map[string]any{"sub": "svc-a", "aud": "gatehouse", "scope": "orders:read"})
	call := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", g.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := call("/orders/1"); code != 200 || !strings.HasPrefix(body, "sub=svc-a rid=") {
		t.Fatalf("valid token: %d %s", code, body)
	}

	// A typo in the file: the reload is refused and the old config serves.
	os.WriteFile(g.file, []byte(strings.Replace(e2eConfig(issSrv.URL, backend.URL), "path_prefix", "path_prefx", 1)), 0o644)
	g.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(g.stderr.String(), "reload failed") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(g.stderr.String(), `unknown key \"path_prefx\"`) {
		t.Fatalf("refused reload not logged with its cause:\n%s", g.stderr.String())
	}
	if code, _ := call("/orders/1"); code != 200 {
		t.Fatalf("after a refused reload: %d", code)
	}

	// SIGTERM during load: in-flight requests complete, exit status 0.
	var wg sync.WaitGroup
	results := make(chan int, 8)
	before := seen.Load()
	for range 8 {
		wg.Go(func() {
			code, _ := call("/orders/slow")
			results <- code
		})
	}
	for seen.Load() < before+8 {
		time.Sleep(10 * time.Millisecond)
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	wg.Wait()
	close(results)
	for code := range results {
		if code != 200 {
			t.Errorf("in-flight request during SIGTERM: %d", code)
		}
	}
	done := make(chan error, 1)
	go func() { done <- g.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, g.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit after SIGTERM")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.url+"/orders/1", nil)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("still accepting after exit")
	}
}

// With --watch=false the configuration file is not watched, but secret
// files still are: a consumer's key read from a file is replaced without a
// reload, and an edit of the configuration file waits for SIGHUP.
func TestE2E_ServeWithoutWatchStillWatchesSecretFiles(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get("X-Gatehouse-Consumer"))
	}))
	defer backend.Close()
	keyFile := filepath.Join(t.TempDir(), "partner.key")
	if err := os.WriteFile(keyFile, []byte("first-key-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin: {address: "127.0.0.1:0"}
consumers:
  - name: partner
    keys:
      primary: {value: "${file:%s}"}
backends:
  - name: be
    instances: [{url: %q}]
apis:
  - name: orders
    path_prefix: /orders
    backend: be
    auth: {credentials: [api_key]}
`, keyFile, backend.URL)
	g := serve(t, cfg, "--watch=false")
	call := func(key string) int {
		req, _ := http.NewRequest("GET", g.url+"/orders/1", nil)
		req.Header.Set("X-API-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := call("first-key-0123456789abcdef"); code != 200 {
		t.Fatalf("the key in the file: %d\n%s", code, g.stderr.String())
	}
	if err := os.WriteFile(keyFile, []byte("second-key-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; call("second-key-0123456789abcdef") != 200; i++ {
		if i == 100 {
			t.Fatalf("the replaced key file was not picked up in 10 s with --watch=false:\n%s", g.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := call("first-key-0123456789abcdef"); code != 401 {
		t.Fatalf("the replaced key: %d, want 401", code)
	}
	// The configuration file itself is not watched.
	edited := strings.Replace(cfg, "path_prefix: /orders", "path_prefix: /shop", 1)
	if err := os.WriteFile(g.file, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if code := call("second-key-0123456789abcdef"); code != 200 {
		t.Fatalf("an edit of the configuration file was applied without SIGHUP: %d", code)
	}
}
