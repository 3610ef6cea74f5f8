package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// immutable makes paths unwritable even for root (chattr +i), and undoes
// it at cleanup. File permissions do not stop root, which runs the CI.
func immutable(t *testing.T, paths ...string) (undo func()) {
	t.Helper()
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr is not installed: cannot make a directory unwritable for root")
	}
	var done []string
	undo = func() {
		for _, p := range done {
			exec.Command("chattr", "-i", p).Run()
		}
		done = nil
	}
	t.Cleanup(undo)
	for _, p := range paths {
		if out, err := exec.Command("chattr", "+i", p).CombinedOutput(); err != nil {
			t.Skipf("chattr +i %s: %v %s (the filesystem does not support it)", p, err, out)
		}
		done = append(done, p)
	}
	return undo
}

// Threat: the data directory cannot be written at start. The gateway says
// so, naming storage.data_dir, and does not start half-way.
func TestDataDir_UnwritableAtStartIsAClearError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dir, 0o700)
	immutable(t, dir)
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, file, "http://127.0.0.1:1", "")
	_, err := server.New(context.Background(), server.Options{
		Load:    func() (*config.Document, config.Diagnostics) { return config.Load(file) },
		Logger:  slog.New(slog.DiscardHandler),
		DataDir: dir,
	})
	if err == nil {
		t.Fatal("started with an unwritable data directory")
	}
	if !strings.Contains(err.Error(), "storage.data_dir") {
		t.Fatalf("error does not name storage.data_dir: %v", err)
	}
	t.Logf("error: %v", err)
}

// Threat: the data directory becomes unwritable while the gateway runs
// (disk full, read-only remount). Admin writes fail with a clear 5xx,
// nothing crashes, traffic keeps flowing, and once the disk is back the
// store works and its audit chain is intact.
func TestDataDir_BecomesUnwritableWhileServing(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	dir := filepath.Join(t.TempDir(), "data")
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, file, backend.URL, "")
	data, _ := os.ReadFile(file)
	os.WriteFile(file, []byte(strings.Replace(string(data), `admin: {address: "127.0.0.1:0"}`, `admin: {address: "127.0.0.1:0", insecure_local: true}`, 1)), 0o644)
	s := startIn(t, file, dir)

	create := func(name string) (int, string) {
		req, _ := http.NewRequest("POST", s.admin+"/v1/consumers", strings.NewReader(fmt.Sprintf(`{"name":%q}`, name)))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := create("before"); code != 201 {
		t.Fatalf("create before: %d %s", code, body)
	}

	paths := []string{dir}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		paths = append(paths, filepath.Join(dir, e.Name()))
	}
	undo := immutable(t, paths...)
	code, body := create("during")
	if code < 500 || !strings.Contains(body, "problem") && !strings.Contains(body, `"status"`) {
		t.Fatalf("create while unwritable: %d %s, want a 5xx problem", code, body)
	}
	t.Logf("while unwritable: %d %s", code, body)
	if strings.Contains(body, dir) {
		t.Errorf("the problem leaks the data directory path: %s", body)
	}
	if code, _ := get(t, s.url+"/a/x"); code != 200 {
		t.Fatalf("traffic while the store is unwritable: %d", code)
	}

	undo()
	if code, body := create("after"); code != 201 {
		t.Fatalf("create after: %d %s", code, body)
	}
	_, listing := get(t, s.admin+"/v1/consumers")
	if !strings.Contains(listing, `"before"`) || !strings.Contains(listing, `"after"`) {
		t.Fatalf("consumers lost: %s", listing)
	}
	if code, body := get(t, s.admin+"/v1/audit/verify"); code != 200 || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("audit chain after the outage: %d %s", code, body)
	}
}
