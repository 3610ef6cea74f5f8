package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func storeConfig(adminKey, registrarKey string) string {
	return fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin:
    address: "127.0.0.1:0"
    auth:
      api_keys:
        - {name: ops, sha256: %q, role: admin}
        - {name: orders-task, sha256: %q, role: registrar, services: [orders]}
  timeouts: {shutdown: 5s}
backends:
  - name: orders
    registry: {service: orders}
apis:
  - name: orders
    path_prefix: /orders
    backend: orders
    auth: {anonymous: true}
`, identity.HashKey(adminKey), identity.HashKey(registrarKey))
}

func adminDo(t *testing.T, method, url, key string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

func instances(t *testing.T, g *gateway, key string) []map[string]any {
	_, m := adminDo(t, "GET", g.admin+"/v1/services/orders/instances", key, nil)
	var out []map[string]any
	for _, in := range m["instances"].([]any) {
		out = append(out, in.(map[string]any))
	}
	return out
}

// register --ecs reads the documented task metadata v4 JSON, registers the
// task's private IP with the given port and the task's metadata,
// heartbeats, and deregisters on SIGTERM before exiting 0.
func TestE2E_RegisterECS(t *testing.T) {
	adminKey, registrarKey := mustGenerate(t), mustGenerate(t)
	task, _ := os.ReadFile("testdata/ecs/task.json")
	container, _ := os.ReadFile("testdata/ecs/container.json")
	const prefix = "/v4/5d2f0e64b1a94c3c9b1f2e7a8c6d4b10-3911217005"
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case prefix + "/task":
			w.Write(task)
		case prefix:
			w.Write(container)
		default:
			http.NotFound(w, r)
		}
	}))
	defer meta.Close()
	g := serve(t, storeConfig(adminKey, registrarKey))

	cmd := exec.Command(build(t), "register", "--ecs", "--port", "8080", "--ttl", "3s", "--admin-url", g.admin)
	cmd.Env = append(os.Environ(), "ECS_CONTAINER_METADATA_URI_V4="+meta.URL+prefix, "GATEHOUSE_ADMIN_TOKEN="+registrarKey)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	var in map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for in == nil {
		if list := instances(t, g, adminKey); len(list) > 0 {
			in = list[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not registered:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	md, _ := in["metadata"].(map[string]any)
	for k, want := range map[string]any{
		"id": "10.0.2.106:8080", "address": "10.0.2.106", "port": float64(8080), "zone": "eu-west-1b",
		"scheme": "http", "ttl": "3s", "registered_by": "key:orders-task",
	} {
		if in[k] != want {
			t.Errorf("%s = %v, want %v", k, in[k], want)
		}
	}
	for k, want := range map[string]string{
		"ecs.cluster":           "arn:aws:ecs:eu-west-1:111122223333:cluster/prod",
		"ecs.task_arn":          "arn:aws:ecs:eu-west-1:111122223333:task/prod/5d2f0e64b1a94c3c9b1f2e7a8c6d4b10",
		"ecs.service":           "orders",
		"ecs.family":            "orders-api",
		"ecs.revision":          "42",
		"ecs.availability_zone": "eu-west-1b",
		"ecs.launch_type":       "FARGATE",
	} {
		if md[k] != want {
			t.Errorf("metadata %s = %v, want %q", k, md[k], want)
		}
	}
	// It heartbeats: the registration outlives its TTL.
	time.Sleep(4 * time.Second)
	if list := instances(t, g, adminKey); len(list) != 1 || list[0]["heartbeat"] == in["heartbeat"] {
		t.Fatalf("no heartbeat within the TTL: %v\n%s", list, out.String())
	}

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("did not exit after SIGTERM\n%s", out.String())
	}
	if list := instances(t, g, adminKey); len(list) != 0 {
		t.Fatalf("still registered after SIGTERM: %v", list)
	}
	if strings.Contains(out.String(), registrarKey) {
		t.Fatal("the agent printed its credential")
	}
}

func mustGenerate(t *testing.T) string {
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Changing one byte of the stored audit log: audit verify names the record
// and exits 1.
func TestE2E_AuditVerifyNamesTheAlteredRecord(t *testing.T) {
	adminKey := mustGenerate(t)
	g := serve(t, storeConfig(adminKey, mustGenerate(t)))
	for i := 1; i <= 5; i++ {
		if code, m := adminDo(t, "POST", g.admin+"/v1/services/orders/instances", adminKey, map[string]any{"address": fmt.Sprintf("10.0.0.%d", i), "port": 80}); code != 200 {
			t.Fatalf("register: %d %v", code, m)
		}
	}
	_, m := adminDo(t, "GET", g.admin+"/v1/audit", adminKey, nil)
	var seq float64
	for _, r := range m["records"].([]any) {
		if rec := r.(map[string]any); rec["target"] == "services/orders/instances/10.0.0.3:80" {
			seq = rec["seq"].(float64)
		}
	}
	if seq == 0 {
		t.Fatal("no audit record of the registration")
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	if err := g.cmd.Wait(); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	dataDir := filepath.Join(filepath.Dir(g.file), "data")
	if out, code := run(t, "", "audit", "verify", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "audit log intact: 6 records") {
		t.Fatalf("intact log: exit %d\n%s", code, out)
	}
	if out, code := run(t, "", "audit", "tail", "-n", "2", "--data-dir", dataDir); code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "instance.register") {
		t.Fatalf("tail: exit %d\n%s", code, out)
	}

	db := filepath.Join(dataDir, "gatehouse.db")
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	old := []byte("services/orders/instances/10.0.0.3:80")
	if !bytes.Contains(raw, old) {
		t.Fatal("the record is not in the database file")
	}
	// One byte: 10.0.0.3 becomes 10.0.0.8.
	raw = bytes.ReplaceAll(raw, old, []byte("services/orders/instances/10.0.0.8:80"))
	if err := os.WriteFile(db, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := run(t, "", "audit", "verify", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("record %d was altered", int(seq))) {
		t.Fatalf("altered log: exit %d, want 1 naming record %d\n%s", code, int(seq), out)
	}
}

// keys create|list|rotate|revoke through the admin API, with the
// credential from the environment.
func TestE2E_KeysCommands(t *testing.T) {
	adminKey := mustGenerate(t)
	g := serve(t, storeConfig(adminKey, mustGenerate(t)))
	keys := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(build(t), append([]string{"keys"}, append(args, "--admin-url", g.admin)...)...)
		cmd.Env = append(os.Environ(), "GATEHOUSE_ADMIN_TOKEN="+adminKey)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	out, code := keys("create", "acme", "--scopes", "orders:read", "--secondary")
	if code != 0 || !strings.Contains(out, "primary:  ghk_") || !strings.Contains(out, "secondary: ghk_") {
		t.Fatalf("create: %d\n%s", code, out)
	}
	if out, code := keys("list"); code != 0 || strings.Count(out, "acme") != 2 || strings.Contains(out, "ghk_") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if out, code := keys("rotate", "acme", "--slot", "primary"); code != 0 || !strings.Contains(out, "primary:  ghk_") {
		t.Fatalf("rotate: %d\n%s", code, out)
	}
	if out, code := keys("revoke", "acme", "--slot", "secondary"); code != 0 {
		t.Fatalf("revoke: %d\n%s", code, out)
	}
	if out, code := keys("list"); code != 0 || strings.Count(out, "acme") != 1 {
		t.Fatalf("list after revoke: %d\n%s", code, out)
	}
	if out, code := keys("create", "acme"); code == 0 || !strings.Contains(out, "409") {
		t.Fatalf("second create: %d\n%s", code, out)
	}
}
