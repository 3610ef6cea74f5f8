package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServer_DashboardIsOffUnlessConfigured(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer be.Close()
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, file, be.URL, "")
	s := start(t, file)
	code, body := get(t, s.admin+"/ui/")
	if code != http.StatusNotFound || !strings.Contains(body, "The dashboard is off") {
		t.Fatalf("/ui/ without a dashboard config: %d %s", code, body)
	}
}

func TestServer_StatsAndDashboardOnTheAdminListener(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer be.Close()
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, file, be.URL, "observability:\n  dashboard: {insecure_local: true}\n")
	s := start(t, file)
	// Statistics are admin data: without credentials (and without
	// insecure_local on the admin listener) they are refused.
	if code, _ := get(t, s.admin+"/v1/stats"); code != http.StatusUnauthorized {
		t.Fatalf("/v1/stats without credentials: %d, want 401", code)
	}
	s.cancel()
	<-s.done
	data, _ := os.ReadFile(file)
	os.WriteFile(file, []byte(strings.Replace(string(data), `admin: {address: "127.0.0.1:0"}`, `admin: {address: "127.0.0.1:0", insecure_local: true}`, 1)), 0o644)
	s = start(t, file)
	for range 5 {
		if code, _ := get(t, s.url+"/a/x"); code != 200 {
			t.Fatalf("gateway answered %d", code)
		}
	}
	// The gateway records a request after its response has gone out, so
	// the client can ask before the last one is counted: ask again, a
	// bounded number of times.
	var body string
	found := false
	for try := 0; try < 100 && !found; try++ {
		if try > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		var code int
		code, body = get(t, s.admin+"/v1/stats?window=1m")
		if code != 200 {
			t.Fatalf("/v1/stats: %d %s", code, body)
		}
		var rep struct {
			APIs []struct {
				API      string  `json:"api"`
				Requests int     `json:"requests"`
				P99      float64 `json:"p99_ms"`
			} `json:"apis"`
		}
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatal(err)
		}
		for _, a := range rep.APIs {
			if a.API == "a" && a.Requests > 5 {
				t.Fatalf("/v1/stats counts more than the 5 requests of API a: %s", body)
			}
			if a.API == "a" && a.Requests == 5 && a.P99 > 0 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("/v1/stats does not count the 5 requests of API a within 2s: %s", body)
	}
	if code, _ := get(t, s.admin+"/v1/stats?window=1d"); code != http.StatusBadRequest {
		t.Errorf("bad window: %d", code)
	}
	// insecure_local: the loopback test client goes straight in.
	code, body := get(t, s.admin+"/ui/apis")
	if code != 200 || !strings.Contains(body, "gatehouse.yaml:") {
		t.Fatalf("/ui/apis: %d", code)
	}
	code, body = get(t, s.admin+"/ui/config")
	if code != 200 || !strings.Contains(body, "current") {
		t.Fatalf("/ui/config: %d", code)
	}
}

func TestServer_ProfilesNeedTheAdminRole(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer be.Close()
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, file, be.URL, "")
	s := start(t, file)
	if code, _ := get(t, s.admin+"/debug/pprof/goroutine?debug=1"); code != http.StatusUnauthorized {
		t.Fatalf("profiles without credentials: %d, want 401", code)
	}
}
