package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/store/sqlite"
)

// Quota counters are kept in the embedded store: a restart does not reset
// them.
func TestQuota_SurvivesRestartInTheStore(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`
server:
  listeners: [{address: "127.0.0.1:0"}]
  admin: {address: "127.0.0.1:0"}
backends:
  - {name: be, instances: [{url: %q}]}
apis:
  - name: a
    backend: be
    auth: {anonymous: true}
    quotas:
      - {name: daily, limit: 3, period: day, key: [ip]}
`, backend.URL)), 0o644)

	data := filepath.Join(dir, "data")
	s := startIn(t, file, data)
	for i := range 2 {
		if code, _ := get(t, s.url+"/x"); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	s.cancel()
	<-s.done
	st, err := sqlite.Open(t.Context(), data, sqlite.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := st.LoadQuotaCounters(t.Context())
	st.Close()
	if err != nil || len(saved) != 1 || saved[0].Count != 2 {
		t.Fatalf("the store holds %+v (%v), want one counter at 2", saved, err)
	}
	if _, err := os.Stat(filepath.Join(data, "quotas.json")); err == nil {
		t.Error("quota counters also went to quotas.json")
	}

	s2 := startIn(t, file, data)
	if code, _ := get(t, s2.url+"/x"); code != 200 {
		t.Fatalf("third request after restart: %d", code)
	}
	if code, _ := get(t, s2.url+"/x"); code != 429 {
		t.Fatalf("fourth request after restart: %d, want 429 (the count survived)", code)
	}
}
