package policy

import (
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/quota"
)

func TestQuotas_Decisions(t *testing.T) {
	reg := quota.NewRegistry(nil, nil)
	c := reg.Get(quota.ID{API: "a", Name: "daily"}, quota.Params{Limit: 2, Period: quota.Day, Location: time.UTC, MaxKeys: 10})
	clock := t0
	step := Quotas(QuotaOptions{Rules: []QuotaRule{{Name: "daily", Counter: c, Key: LimitKey{Parts: []KeyPart{{Kind: KeyConsumer}}}, Limit: 2, Location: time.UTC}},
		Now: func() time.Time { return clock }})
	cases := []struct {
		who     string
		advance time.Duration
		status  int
		rl      string
	}{
		{"a", 0, 200, `"daily";r=1;t=43200`},
		{"a", 0, 200, `"daily";r=0;t=43200`},
		{"a", 0, 429, `"daily";r=0;t=43200`},
		{"b", 0, 200, `"daily";r=1;t=43200`},
		{"a", 12 * time.Hour, 200, `"daily";r=1;t=86400`},
	}
	for i, tc := range cases {
		clock = clock.Add(tc.advance)
		w, err, passed := run(step, request("GET", "/", "192.0.2.1", consumer(tc.who), nil))
		status, h := w.Code, w.Header()
		if err != nil {
			status, h = err.Status, err.Header
			if err.Reason != "quota_exhausted" || err.Extensions["renews_at"] != "2026-03-11T00:00:00Z" {
				t.Errorf("request %d: %v %v", i, err.Reason, err.Extensions)
			}
		}
		if status != tc.status || passed != (status == 200) {
			t.Fatalf("request %d: status %d, want %d", i, status, tc.status)
		}
		if h.Get("RateLimit") != tc.rl {
			t.Errorf("request %d: RateLimit %q, want %q", i, h.Get("RateLimit"), tc.rl)
		}
	}
}
