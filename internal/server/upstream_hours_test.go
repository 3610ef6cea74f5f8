package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// suggestionRequests returns the requests the suggestions count for API
// a's operation (0 when it is not listed).
func suggestionRequests(t *testing.T, admin string) int {
	t.Helper()
	code, body := get(t, admin+"/v1/suggestions?min_samples=1")
	if code != 200 {
		t.Fatalf("/v1/suggestions: %d %s", code, body)
	}
	var rep struct {
		Suggestions []struct {
			Kind     string `json:"kind"`
			API      string `json:"api"`
			Evidence struct {
				Requests int `json:"requests"`
			} `json:"evidence"`
		} `json:"suggestions"`
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Suggestions {
		if s.Kind == "timeout" && s.API == "a" {
			return s.Evidence.Requests
		}
	}
	return 0
}

// The day of upstream statistics the suggestions read is saved to the
// store when the gateway stops, and read back by the next one: a restart
// keeps it. Two gateways sharing a store each add the other's.
func TestUpstreamHours_SurviveARestart(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer be.Close()
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, file, be.URL, "")
	data, _ := os.ReadFile(file)
	os.WriteFile(file, []byte(strings.Replace(string(data), `admin: {address: "127.0.0.1:0"}`, `admin: {address: "127.0.0.1:0", insecure_local: true}`, 1)), 0o644)
	dataDir := t.TempDir()

	s := startIn(t, file, dataDir)
	for range 7 {
		if code, _ := get(t, s.url+"/a/x"); code != 200 {
			t.Fatalf("gateway answered %d", code)
		}
	}
	waitUntil(t, "the first gateway to count 7", func() bool { return suggestionRequests(t, s.admin) == 7 })
	s.cancel()
	<-s.done

	s2 := startIn(t, file, dataDir)
	waitUntil(t, "the next gateway to read the 7 back", func() bool { return suggestionRequests(t, s2.admin) == 7 })
	for range 3 {
		get(t, s2.url+"/a/x")
	}
	waitUntil(t, "its own 3 added", func() bool { return suggestionRequests(t, s2.admin) == 10 })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two gateways sharing a PostgreSQL store each advise from both's
// traffic: what one counted reaches the other's suggestions.
func TestUpstreamHours_SharedByGatewaysOnOneStore(t *testing.T) {
	pgURL, schema := postgresSchema(t)
	defer server.SetUpstreamHoursEvery(50 * time.Millisecond)()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer be.Close()
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeConfig(t, file, be.URL, fmt.Sprintf("storage:\n  postgres: {url: %q, schema: %s}\n", pgURL, schema))
	data, _ := os.ReadFile(file)
	os.WriteFile(file, []byte(strings.Replace(string(data), `admin: {address: "127.0.0.1:0"}`, `admin: {address: "127.0.0.1:0", insecure_local: true}`, 1)), 0o644)
	a, b := startIn(t, file, t.TempDir()), startIn(t, file, t.TempDir())
	for range 4 {
		get(t, a.url+"/a/x")
	}
	for range 6 {
		get(t, b.url+"/a/x")
	}
	for _, g := range []*started{a, b} {
		waitUntil(t, "each gateway to count both's 10", func() bool { return suggestionRequests(t, g.admin) == 10 })
	}
}
