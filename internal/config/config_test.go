package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestInvalidConfigs")

// TestInvalidConfigs checks every problem reported for each file in
// testdata/invalid against its .golden file: all of them, with line,
// column and path.
func TestInvalidConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no test files")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, diags := Load(file)
			if diags == nil {
				t.Fatal("accepted, want problems")
			}
			got := diags.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestValidConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if _, diags := Load(file); diags != nil {
				t.Fatalf("problems:\n%v", diags)
			}
		})
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	doc, diags := Load("testdata/valid/anchors.yaml")
	if diags != nil {
		t.Fatal(diags)
	}
	b := doc.Config.APIs[1].Auth
	if len(b.Credentials) != 1 || b.Require == nil || b.Require.Groups.AnyOf[0] != "staff" || b.Issuers[0] != "corp" {
		t.Fatalf("merged auth = %+v", b)
	}
}

func TestEmptyDocument(t *testing.T) {
	doc, diags := Parse("empty.yaml", nil)
	if diags != nil || doc.Config == nil {
		t.Fatalf("empty document: %v", diags)
	}
}

func TestSecretValuesNeverEchoed(t *testing.T) {
	for name, doc := range map[string]string{
		"an inline value":               "consumers:\n  - name: c\n    keys:\n      primary: {value: hunter2-super-secret}\n",
		"a key in place of its mapping": "consumers:\n  - name: c\n    keys:\n      primary: hunter2-super-secret\n",
		"a key in place of a list":      "server:\n  admin:\n    auth:\n      api_keys: hunter2-super-secret\n",
		"headers as one string":         "observability:\n  tracing:\n    headers: Authorization=Bearer hunter2-super-secret\n",
		"a password in a URL":           "observability:\n  tracing:\n    enabled: true\n    endpoint: https://ops:hunter2-super-secret@otlp.example.com/v1/traces\n",
		"a password in a bad URL":       "identity_providers:\n  - name: i\n    issuer: \"ht tp://ops:hunter2-super-secret@idp\"\n    audiences: [x]\n",
		"a password in the store's URL": "storage:\n  postgres:\n    url: postgres://gh:hunter2-super-secret@db/gh\n",
		"a password as a URL parameter": "storage:\n  postgres:\n    url: postgres://gh@db/gh?password=hunter2-super-secret\n",
		"a password in a bad store URL": "storage:\n  postgres:\n    url: \"postgres://gh:hunter2-super-secret@db:port/gh\"\n",
		"a store password inline":       "storage:\n  postgres:\n    url: postgres://gh@db/gh\n    password: hunter2-super-secret\n",
		"a key passphrase in the URL":   "storage:\n  postgres:\n    url: postgres://gh@db/gh?sslpassword=hunter2-super-secret\n",
		"a password in Redis's URL":     "storage:\n  redis:\n    url: redis://:hunter2-super-secret@cache:6379/0\n",
		"a password in a bad Redis URL": "storage:\n  redis:\n    url: \"redis://:hunter2-super-secret@cache:port/0\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, diags := Parse("s.yaml", []byte(doc))
			if diags == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(diags.Error(), "hunter2") {
				t.Fatalf("a diagnostic repeats the secret: %v", diags)
			}
		})
	}
}

func TestParseDurationAndSize(t *testing.T) {
	for in, want := range map[string]string{"30s": "30s", "1d12h": "36h0m0s", "2d": "48h0m0s", "250ms": "250ms", "0": "0s"} {
		d, err := ParseDuration(in)
		if err != nil || d.String() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
	for _, bad := range []string{"10", "1.5", "fast", "-1s", "1x"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
	for in, want := range map[string]int64{"512": 512, "64KiB": 65536, "10MiB": 10 << 20, "1MB": 1e6, "2 GiB": 2 << 30, "7B": 7} {
		n, err := ParseSize(in)
		if err != nil || n != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "10 parsecs", "99999999999GiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func FuzzDecodeValidate(f *testing.F) {
	for _, glob := range []string{"testdata/valid/*.yaml", "testdata/invalid/*.yaml", "../../examples/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, diags := Parse("fuzz.yaml", data)
		if doc == nil || doc.Config == nil {
			t.Fatal("nil document")
		}
		for _, d := range diags {
			if d.Msg == "" {
				t.Fatalf("empty diagnostic at %v", d.Pos)
			}
		}
	})
}

// api_keys.header cannot be a field that has a meaning of its own or that
// the gateway sets, forwards or logs: a key sent there would be echoed,
// forwarded or written to the access log.
func TestAPIKeyHeaderCannotBeAFieldOfItsOwn(t *testing.T) {
	base := "backends: [{name: be, instances: [{url: \"http://127.0.0.1:9\"}]}]\napis: [{name: a, backend: be, auth: {credentials: [api_key]}}]\n"
	for _, c := range []struct{ extra, want string }{
		{"api_keys: {header: X-Request-ID}\n", "is the request ID's header"},
		{"api_keys: {header: X-Trace}\nserver: {request_id: {header: x-trace}}\n", "is the request ID's header"},
		{"api_keys: {header: Host}\n", "cannot carry API keys"},
		{"api_keys: {header: cookie}\n", "cannot carry API keys"},
		{"api_keys: {header: X-Forwarded-For}\n", "cannot carry API keys"},
		{"api_keys: {header: Authorization}\n", "cannot carry API keys"},
		{"api_keys: {header: X-Gatehouse-Key}\n", "identity headers"},
		{"api_keys: {header: X-API-Key}\n", ""},
		{"api_keys: {header: Ocp-Apim-Subscription-Key}\n", ""},
	} {
		_, diags := Parse("g.yaml", []byte(base+c.extra))
		got := fmt.Sprint(diags)
		if c.want == "" && diags != nil || c.want != "" && !strings.Contains(got, "api_keys.header: ") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %v", strings.TrimSpace(c.extra), got)
		}
	}
}
