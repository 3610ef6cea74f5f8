package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/observe"
)

func TestStatsHandler(t *testing.T) {
	stats := observe.NewStats(nil)
	stats.Route("orders", "getOrder").Observe(200, 5*time.Millisecond)
	stats.Route("orders", "getOrder").Observe(503, 50*time.Millisecond)
	h := StatsHandler(stats)
	cases := []struct {
		name, query string
		status      int
		series      int
	}{
		{"default window", "", 200, 0},
		{"last hour with series", "?window=1h&series=true", 200, 60},
		{"unknown window", "?window=7d", 400, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/stats"+c.query, nil))
			if w.Code != c.status {
				t.Fatalf("status %d, want %d", w.Code, c.status)
			}
			if c.status != 200 {
				if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Fatalf("an error as %q, want a problem document", ct)
				}
				return
			}
			var rep observe.Report
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			a := rep.APIs[0]
			if a.API != "orders" || a.Requests != 2 || a.Errors5xx != 1 || len(a.Series) != c.series || len(a.Operations) != 1 {
				t.Errorf("report: %+v", a)
			}
		})
	}
	w := httptest.NewRecorder()
	StatsHandler(nil).ServeHTTP(w, httptest.NewRequest("GET", "/v1/stats", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("no stats: %d", w.Code)
	}
}
