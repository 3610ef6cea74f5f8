package config

import (
	"strings"
	"testing"
)

// Threat: an alias bomb. A 2 KB file whose aliases stand for 8 million
// values made validation run for minutes and allocate gigabytes (found
// while writing this test). The decoder now stops after a budget of
// values with one clear problem.
func TestDecode_AliasBombIsBounded(t *testing.T) {
	rep := func(s string, n int) string { return "[" + strings.TrimSuffix(strings.Repeat(s+",", n), ",") + "]" }
	y := "x-m: &m " + rep("GET", 200) + "\n" +
		"x-o: &o {path: /x, methods: *m}\n" +
		"x-os: &os " + rep("*o", 200) + "\n" +
		"x-a: &a {name: a, backend: b, auth: {anonymous: true}, operations: *os}\n" +
		"apis: " + rep("*a", 200) + "\n"
	_, diags := Parse("bomb.yaml", []byte(y))
	if len(diags) == 0 || len(diags) > 20000 {
		t.Fatalf("%d problems", len(diags))
	}
	found := false
	for _, d := range diags {
		if strings.Contains(d.Msg, "too many values") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no alias-bomb problem among %d", len(diags))
	}
}

// Anchors merged into many places stay within the budget.
func TestDecode_ModestAliasingIsAccepted(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-auth: &auth {anonymous: true}\nbackends: [{name: b, instances: [{url: \"http://127.0.0.1:1\"}]}]\napis:\n")
	for i := range 300 {
		b.WriteString("  - {name: a" + strings.Repeat("x", i%7) + itoa(i) + ", path_prefix: /p" + itoa(i) + ", backend: b, auth: *auth}\n")
	}
	if _, diags := Parse("ok.yaml", []byte(b.String())); diags != nil {
		t.Fatal(diags)
	}
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}
