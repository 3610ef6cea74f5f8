package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/gatehouse-dev/gatehouse/internal/server"
)

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

// fakeVault serves one KV v2 secret, secret/data/gatehouse.
type fakeVault struct {
	mu     sync.Mutex
	token  string
	fields map[string]string
}

func (v *fakeVault) set(field, value string) {
	v.mu.Lock()
	v.fields[field] = value
	v.mu.Unlock()
}

func (v *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.Header.Get("X-Vault-Token") != v.token {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"errors":["permission denied"]}`))
		return
	}
	if r.URL.Path != "/v1/secret/data/gatehouse" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"data": v.fields}})
}

const (
	fileKey1      = "ghk_file-key-one-0123456789abcdef"
	fileKey2      = "ghk_file-key-two-0123456789abcdef"
	vaultKey1     = "ghk_vault-key-one-0123456789abcdef"
	vaultKey2     = "ghk_vault-key-two-0123456789abcdef"
	vaultTok      = "hvs.gatehouse-test-token"
	vaultAdminKey = "ghk_vault-admin-key-0123456789abcdef"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

type secretsEnv struct {
	s     *started
	logs  *lockedBuffer
	vault *fakeVault
	dir   string
}

func startWithSecrets(t *testing.T) *secretsEnv {
	t.Helper()
	return startWithSecretsWatching(t, true)
}

// startWithSecretsWatching is startWithSecrets; without watchConfig, only
// the secrets are watched, as under `gatehouse serve --watch=false`.
func startWithSecretsWatching(t *testing.T, watchConfig bool) *secretsEnv {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(backend.Close)
	fv := &fakeVault{token: vaultTok, fields: map[string]string{"api_key": vaultKey1, "admin_key": vaultAdminKey}}
	vsrv := httptest.NewServer(fv)
	t.Cleanup(vsrv.Close)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "file-key"), fileKey1+"\n")
	writeFile(t, filepath.Join(dir, "vault-token"), vaultTok+"\n")
	file := filepath.Join(dir, "gatehouse.yaml")
	writeFile(t, file, fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin:
    address: "127.0.0.1:0"
    auth:
      api_keys: [{name: ops, role: viewer, value: "${vault:secret/data/gatehouse#admin_key}"}]
  timeouts: {shutdown: 5s}
secrets:
  vault: {address: %q, token_file: %q, timeout: 2s}
consumers:
  - name: filer
    keys: {primary: {value: "${file:%s}"}}
  - name: vaulted
    keys: {primary: {value: "${vault:secret/data/gatehouse#api_key}"}}
backends:
  - name: be
    instances: [{url: %q}]
apis:
  - name: a
    path_prefix: /a
    backend: be
    auth: {credentials: [api_key]}
`, vsrv.URL, filepath.Join(dir, "vault-token"), filepath.Join(dir, "file-key"), backend.URL))

	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var s *started
	if watchConfig {
		s = startWith(t, file, t.TempDir(), logger)
	} else {
		s = serve(t, file, t.TempDir(), logger)
		go s.srv.WatchSecrets(s.ctx)
	}
	return &secretsEnv{s: s, logs: logs, vault: fv, dir: dir}
}

func statusWithKey(t *testing.T, url, key string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/a/x", nil)
	req.Header.Set("X-API-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// The promise: rotating a mounted secret file takes effect without a
// restart, and the old value stops working.
func TestSecrets_FileSecretChangeTakesEffectWithoutRestart(t *testing.T) {
	e := startWithSecrets(t)
	if code := statusWithKey(t, e.s.url, fileKey1); code != 200 {
		t.Fatalf("file key before rotation: %d", code)
	}
	writeFile(t, filepath.Join(e.dir, "file-key"), fileKey2+"\n")
	waitFor(t, func() bool { return statusWithKey(t, e.s.url, fileKey2) == 200 })
	if code := statusWithKey(t, e.s.url, fileKey1); code != 401 {
		t.Fatalf("the rotated-out file key still works: %d", code)
	}
	assertNoSecrets(t, e.logs.String())
}

// Without the configuration file's watch (serve --watch=false), secret
// files are still watched: rotating one takes effect all the same. (The
// flag turned their watch off too, and Vault's refresh_interval.)
func TestSecrets_FileSecretWatchedWithoutTheConfigWatch(t *testing.T) {
	e := startWithSecretsWatching(t, false)
	writeFile(t, filepath.Join(e.dir, "file-key"), fileKey2+"\n")
	waitFor(t, func() bool { return statusWithKey(t, e.s.url, fileKey2) == 200 })
}

// ${vault:...} resolves at start and is read again on reload (SIGHUP).
func TestSecrets_VaultSecretResolvesAndIsRereadOnReload(t *testing.T) {
	e := startWithSecrets(t)
	if code := statusWithKey(t, e.s.url, vaultKey1); code != 200 {
		t.Fatalf("vault key: %d", code)
	}
	e.vault.set("api_key", vaultKey2)
	if err := e.s.srv.Reload(context.Background(), "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if code := statusWithKey(t, e.s.url, vaultKey2); code != 200 {
		t.Fatalf("new vault key after reload: %d", code)
	}
	if code := statusWithKey(t, e.s.url, vaultKey1); code != 401 {
		t.Fatalf("old vault key after reload: %d", code)
	}
	assertNoSecrets(t, e.logs.String())
}

// An admin API key is a secret reference like a consumer's: ${vault:...}
// resolves too.
func TestSecrets_AdminKeyFromVault(t *testing.T) {
	e := startWithSecrets(t)
	for _, tc := range []struct {
		key  string
		want int
	}{{vaultAdminKey, 200}, {"ghk_not-the-admin-key-0123456789abcd", 401}} {
		req, _ := http.NewRequest("GET", e.s.admin+"/v1/config", nil)
		req.Header.Set("Authorization", "Bearer "+tc.key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("admin API with key %.12s…: %d, want %d", tc.key, res.StatusCode, tc.want)
		}
	}
	assertNoSecrets(t, e.logs.String())
}

// Threat: a failure while resolving secrets (here Vault refusing a
// revoked token) writes a secret into the log or the error.
func TestSecrets_FailureNeverShowsSecretValues(t *testing.T) {
	e := startWithSecrets(t)
	e.vault.mu.Lock()
	e.vault.token = "hvs.another-token"
	e.vault.mu.Unlock()
	err := e.s.srv.Reload(context.Background(), "SIGHUP")
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("reload error %v", err)
	}
	if code := statusWithKey(t, e.s.url, vaultKey1); code != 200 {
		t.Fatalf("the running configuration stopped serving: %d", code)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "configuration refused") {
		t.Fatalf("the failure was not logged:\n%s", logs)
	}
	assertNoSecrets(t, logs)
	assertNoSecrets(t, err.Error())
}

func assertNoSecrets(t *testing.T, text string) {
	t.Helper()
	for _, s := range []string{fileKey1, fileKey2, vaultKey1, vaultKey2, vaultTok, vaultAdminKey} {
		if strings.Contains(text, s) {
			t.Fatalf("a secret value appears: %s\n%s", s, text)
		}
	}
}

// When the configuration file cannot be watched (out of inotify
// instances, say), Watch logs it and goes on following the secret files;
// it stopped their watch (and Vault's refresh) with it.
func TestSecrets_WatchedWhenTheConfigFileCannotBe(t *testing.T) {
	t.Cleanup(server.SetConfigWatcher(func() (*fsnotify.Watcher, error) { return nil, errors.New("too many open files") }))
	e := startWithSecretsWatching(t, true)
	writeFile(t, filepath.Join(e.dir, "file-key"), fileKey2+"\n")
	waitFor(t, func() bool { return statusWithKey(t, e.s.url, fileKey2) == 200 })
	if !strings.Contains(e.logs.String(), "not watching the configuration file") {
		t.Fatalf("the configuration file's watch failed silently:\n%s", e.logs.String())
	}
}

// Without a watcher for the secret files (out of inotify instances),
// Watch says so and goes on: the configuration file is still watched,
// and a changed secret file is picked up at the next reload.
func TestSecrets_NoSecretsWatcher(t *testing.T) {
	t.Cleanup(server.SetSecretsWatcher(func() (*fsnotify.Watcher, error) { return nil, errors.New("too many open files") }))
	e := startWithSecretsWatching(t, true)
	waitFor(t, func() bool { return strings.Contains(e.logs.String(), "secret files are not watched") })
	writeFile(t, filepath.Join(e.dir, "file-key"), fileKey2+"\n")
	time.Sleep(time.Second) // more than a watch's debounce (300 ms) and reload
	if code := statusWithKey(t, e.s.url, fileKey2); code == 200 {
		t.Fatal("a secret file was followed without a watcher")
	}
	if err := e.s.srv.Reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if code := statusWithKey(t, e.s.url, fileKey2); code != 200 {
		t.Fatalf("the changed secret file after a reload: %d", code)
	}
}
