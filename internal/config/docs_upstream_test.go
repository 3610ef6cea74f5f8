package config

import (
	"os"
	"strings"
	"testing"
)

// TestTrafficDocExampleIsValid keeps the complete example of
// docs/traffic.md valid.
func TestTrafficDocExampleIsValid(t *testing.T) {
	doc, err := os.ReadFile("../../docs/traffic.md")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, block := range strings.Split(string(doc), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if !strings.HasPrefix(block, "# full example") {
			continue
		}
		found = true
		if _, diags := Parse("traffic.md", []byte(block)); diags != nil {
			t.Errorf("the full example of docs/traffic.md is invalid:\n%v", diags)
		}
	}
	if !found {
		t.Fatal("docs/traffic.md has no full example")
	}
}

func TestEffectiveTimeouts_OperationOverridesPerKey(t *testing.T) {
	d := func(s string) Duration { v, _ := ParseDuration(s); return Duration{Duration: v, Set: true} }
	for _, tc := range []struct {
		name     string
		api, op  *UpstreamTimeouts
		req, att string
	}{
		{"defaults", nil, nil, "30s", "30s"},
		{"api_only", &UpstreamTimeouts{Request: d("10s"), UpstreamAttempt: d("3s")}, nil, "10s", "3s"},
		{"attempt_defaults_to_request", &UpstreamTimeouts{Request: d("10s")}, nil, "10s", "10s"},
		{"op_overrides_one_key", &UpstreamTimeouts{Request: d("10s"), UpstreamAttempt: d("3s")}, &UpstreamTimeouts{UpstreamAttempt: d("1s")}, "10s", "1s"},
		{"op_request_keeps_api_attempt", &UpstreamTimeouts{UpstreamAttempt: d("3s")}, &UpstreamTimeouts{Request: d("20s")}, "20s", "3s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := EffectiveTimeouts(tc.api, tc.op)
			if got.Request.String() != d(tc.req).Duration.String() || got.UpstreamAttempt != d(tc.att).Duration {
				t.Fatalf("got %+v, want request %s attempt %s", got, tc.req, tc.att)
			}
		})
	}
}

func TestParseHashKey(t *testing.T) {
	for in, want := range map[string]HashKey{
		"header:X-User":   {Kind: HashKeyHeader, Name: "X-User"},
		"cookie:sid":      {Kind: HashKeyCookie, Name: "sid"},
		"client_ip":       {Kind: HashKeyClientIP},
		"subject":         {Kind: HashKeySubject},
		"claim:tenant.id": {Kind: HashKeyClaim, Name: "tenant.id"},
	} {
		got, err := ParseHashKey(in)
		if err != nil || got != want {
			t.Errorf("ParseHashKey(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "header:", "header:a b", "cookie:a;b", "claim:", "claim:a..b", "ip", "query:x", "Client_IP"} {
		if _, err := ParseHashKey(bad); err == nil {
			t.Errorf("ParseHashKey(%q) accepted", bad)
		}
	}
}
