package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const diffOld = `
backends:
  - name: orders
    instances: [{url: "http://127.0.0.1:9001"}]
  - name: legacy
    instances: [{url: "http://127.0.0.1:9002"}]
identity_providers:
  - {name: corp, issuer: "https://idp.example.com", audiences: [orders]}
apis:
  - name: orders
    path_prefix: /orders
    backend: orders
    auth: {credentials: [jwt]}
    rate_limits:
      - {name: per-caller, rate: 100, period: 1m}
    operations:
      - name: getOrder
        method: GET
        path: /{id}
        auth: {credentials: [jwt], require: {scopes: {all_of: [orders:read]}}}
      - {method: DELETE, path: "/{id}", auth: {credentials: [jwt], require: {groups: {any_of: [admins]}}}}
  - name: old
    path_prefix: /old
    backend: legacy
    auth: {anonymous: true}
`

// gatehouse diff names what changes by setting, list items by their
// names: a scope added, a group changed on an unnamed operation, a
// limit's rate, a timeout set, an API and a backend removed, another
// added; the exit status says whether anything changed.
func TestDiff_SettingBySetting(t *testing.T) {
	dir := t.TempDir()
	oldFile, newFile := filepath.Join(dir, "old.yaml"), filepath.Join(dir, "new.yaml")
	newCfg := strings.NewReplacer(
		"all_of: [orders:read]", "all_of: [orders:read, orders:audit]",
		"any_of: [admins]", "any_of: [admins, support]",
		"rate: 100", "rate: 50",
		"    auth: {credentials: [jwt]}\n    rate_limits", "    auth: {credentials: [jwt]}\n    timeouts: {request: 5s}\n    rate_limits",
		"  - name: old\n    path_prefix: /old\n    backend: legacy\n", "  - name: billing\n    path_prefix: /billing\n    backend: orders\n",
		"  - name: legacy\n    instances: [{url: \"http://127.0.0.1:9002\"}]\n", "",
	).Replace(diffOld)
	os.WriteFile(oldFile, []byte(diffOld), 0o644)
	os.WriteFile(newFile, []byte(newCfg), 0o644)

	var out, errs bytes.Buffer
	code := Main(context.Background(), []string{"diff", oldFile, newFile}, nil, &out, &errs)
	want := `+ apis[billing] (added)
- apis[old] (removed)
~ apis[orders].operations[DELETE /{id}].auth.require.groups.any_of: [admins] -> [admins, support]
~ apis[orders].operations[getOrder].auth.require.scopes.all_of: [orders:read] -> [orders:read, orders:audit]
~ apis[orders].rate_limits[per-caller].rate: 100 -> 50
+ apis[orders].timeouts.request: 5s
- backends[legacy] (removed)
`
	if code != 1 || out.String() != want {
		t.Fatalf("exit %d, stderr %q, output:\n%s\nwant:\n%s", code, errs.String(), out.String(), want)
	}

	out.Reset()
	if code := Main(context.Background(), []string{"diff", "--json", oldFile, newFile}, nil, &out, &errs); code != 1 {
		t.Fatalf("--json: exit %d", code)
	}
	var rep struct {
		Changes []struct {
			Path     string
			Old, New string
			Added    bool
		}
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Changes) != 7 || rep.Changes[0].Path != "apis[billing]" || !rep.Changes[0].Added {
		t.Fatalf("--json: %v %+v", err, rep)
	}

	out.Reset()
	if code := Main(context.Background(), []string{"diff", oldFile, oldFile}, nil, &out, &errs); code != 0 || out.String() != "no changes\n" {
		t.Fatalf("the same file: exit %d, %q", code, out.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apis: [{name: x, bakend: y}]\n"), 0o644)
	out.Reset()
	if code := Main(context.Background(), []string{"diff", oldFile, bad}, nil, &out, &errs); code != 2 || !strings.Contains(out.String(), "bad.yaml:1:") {
		t.Fatalf("an invalid file: exit %d, %q", code, out.String())
	}
}

// Items of a list in another order are one change: rate limits are
// checked in order, and a refused request still counts against those
// before it.
func TestDiff_AReorderIsAChange(t *testing.T) {
	dir := t.TempDir()
	const cfg = `
backends: [{name: be, instances: [{url: "http://127.0.0.1:9"}]}]
apis:
  - name: a
    backend: be
    auth: {anonymous: true}
    rate_limits:
      - {name: burst, rate: 10, period: 1s, key: [ip]}
      - {name: hourly, rate: 1000, period: 1h, key: [ip]}
`
	swapped := strings.Replace(strings.Replace(cfg, "      - {name: burst, rate: 10, period: 1s, key: [ip]}\n", "", 1),
		"      - {name: hourly, rate: 1000, period: 1h, key: [ip]}\n", "      - {name: hourly, rate: 1000, period: 1h, key: [ip]}\n      - {name: burst, rate: 10, period: 1s, key: [ip]}\n", 1)
	oldFile, newFile := filepath.Join(dir, "old.yaml"), filepath.Join(dir, "new.yaml")
	os.WriteFile(oldFile, []byte(cfg), 0o644)
	os.WriteFile(newFile, []byte(swapped), 0o644)
	var out, errs bytes.Buffer
	code := Main(context.Background(), []string{"diff", oldFile, newFile}, nil, &out, &errs)
	if want := "~ apis[a].rate_limits (order): [burst, hourly] -> [hourly, burst]\n"; code != 1 || out.String() != want {
		t.Fatalf("exit %d: %q, want %q", code, out.String(), want)
	}
}
