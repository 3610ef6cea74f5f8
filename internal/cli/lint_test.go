package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/lint"
)

// runLint runs gatehouse lint from internal/lint, where the test
// configurations name their OpenAPI documents relative to.
func runLint(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Chdir("../lint")
	var out, errs bytes.Buffer
	code = Main(context.Background(), append([]string{"lint"}, args...), nil, &out, &errs)
	return code, out.String(), errs.String()
}

var findingLine = regexp.MustCompile(`^testdata/[a-z]+\.yaml:\d+:\d+: (error|warning|info): [a-z-]+: apis\[\d+\][^:]*: .+$`)

func TestLint_TextExitCodes(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		code    int
		lines   int // finding lines before the summary
		summary string
	}{
		{"aligned", []string{"testdata/aligned.yaml"}, 0, 0, "0 errors, 0 warnings, 0 info in 1 file"},
		{"warnings only", []string{"testdata/unauthenticated.yaml"}, 0, 3, "0 errors, 3 warnings, 0 info in 1 file"},
		{"warnings, strict", []string{"--strict", "testdata/unauthenticated.yaml"}, 1, 3, "0 errors, 3 warnings, 0 info in 1 file"},
		{"errors", []string{"testdata/misaligned.yaml"}, 1, 8, "1 error, 5 warnings, 2 info in 1 file"},
		{"two files", []string{"testdata/aligned.yaml", "testdata/shadowed.yaml"}, 1, 4, "2 errors, 2 warnings, 0 info in 2 files"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runLint(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, errs)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if n := len(lines) - 1; n != tc.lines {
				t.Fatalf("%d finding lines, want %d:\n%s", n, tc.lines, out)
			}
			for _, l := range lines[:tc.lines] {
				if !findingLine.MatchString(l) {
					t.Errorf("line not file:line:col: severity: code: path: message: %q", l)
				}
			}
			if got := lines[len(lines)-1]; got != tc.summary {
				t.Errorf("summary %q, want %q", got, tc.summary)
			}
		})
	}
}

// Lines are sorted by position, and a line says the finding in full.
func TestLint_TextOrderAndContent(t *testing.T) {
	_, out, _ := runLint(t, "testdata/misaligned.yaml")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	lines = lines[:len(lines)-1]
	prev := 0
	for _, l := range lines {
		var line int
		rest := strings.TrimPrefix(l, "testdata/misaligned.yaml:")
		for _, c := range rest {
			if c < '0' || c > '9' {
				break
			}
			line = line*10 + int(c-'0')
		}
		if line < prev {
			t.Errorf("line %d after line %d:\n%s", line, prev, out)
		}
		prev = line
	}
	want := "testdata/misaligned.yaml:25:15: error: backend-requires-auth: apis[0].operations[2].auth: GET /items/{item-id} (getItem) requires oauth (oauth2)"
	if !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

func TestLint_JSON(t *testing.T) {
	code, out, _ := runLint(t, "-f", "json", "testdata/misaligned.yaml")
	if code != 1 {
		t.Errorf("exit %d, want 1 (an error finding)", code)
	}
	var fs []lint.Finding
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		t.Fatalf("not a JSON array of findings: %v\n%s", err, out)
	}
	if len(fs) != 8 {
		t.Fatalf("%d findings, want 8:\n%s", len(fs), out)
	}
	var raw []map[string]any
	json.Unmarshal([]byte(out), &raw)
	for _, k := range []string{"severity", "code", "file", "line", "col", "path", "message"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("finding lacks %q: %v", k, raw[0])
		}
	}
	f := fs[2]
	if f.Severity != lint.Error || f.Code != "backend-requires-auth" || f.File != "testdata/misaligned.yaml" ||
		f.Line != 25 || f.Col != 15 || f.Path != "apis[0].operations[2].auth" || !strings.Contains(f.Message, "getItem") {
		t.Errorf("third finding %+v", f)
	}

	code, out, _ = runLint(t, "-f", "json", "testdata/aligned.yaml")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("aligned: exit %d, output %q; want 0 and []", code, out)
	}
	code, _, _ = runLint(t, "--format", "json", "--strict", "testdata/unauthenticated.yaml")
	if code != 1 {
		t.Errorf("--strict with warnings: exit %d, want 1", code)
	}
}

// A configuration that does not compile prints its diagnostics, as
// validate does, and fails; with -f json they go to stderr so that stdout
// stays JSON.
func TestLint_InvalidConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apis:\n  - name: x\n    backend: nope\n    auth: {anonymous: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runLint(t, bad)
	if code != 1 || !strings.Contains(out, bad+`:3:14: apis[0].backend: unknown backend "nope"`) {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	if !strings.Contains(out, "(1 not linted: it does not load or compile)") {
		t.Errorf("summary does not say a file was not linted:\n%s", out)
	}
	code, out, errs := runLint(t, "-f", "json", bad, "testdata/aligned.yaml")
	if code != 1 || strings.TrimSpace(out) != "[]" || !strings.Contains(errs, "unknown backend") {
		t.Errorf("json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = runLint(t, "-f", "xml", "testdata/aligned.yaml")
	if code != 1 || !strings.Contains(errs, "-f must be text or json") {
		t.Errorf("-f xml: exit %d, stderr %q", code, errs)
	}
}
