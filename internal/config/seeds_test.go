package config

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/securitytest/seedcorpus"
)

// configSeeds are hostile or odd configuration files for
// FuzzDecodeValidate: alias bombs, deep nesting, overflowing sizes and
// durations, secrets written inline, bytes that are not UTF-8.
func configSeeds() map[string]string {
	rep := func(s string, n int) string { return "[" + strings.TrimSuffix(strings.Repeat(s+",", n), ",") + "]" }
	return map[string]string{
		"alias_bomb_width": "x-m: &m " + rep("GET", 50) + "\nx-o: &o {path: /x, methods: *m}\nx-os: &os " + rep("*o", 50) +
			"\nx-a: &a {name: a, backend: b, auth: {anonymous: true}, operations: *os}\napis: " + rep("*a", 50) + "\n",
		"alias_bomb_depth":  "x-a: &a [x]\nx-b: &b [*a, *a]\nx-c: &c [*b, *b]\nx-d: &d [*c, *c]\napis: [{name: a, hosts: *d}]\n",
		"alias_recursive":   "x-a: &a {b: *a}\n",
		"deep_flow":         "apis: " + strings.Repeat("[", 500) + strings.Repeat("]", 500) + "\n",
		"merge_keys":        "x-d: &d {backend: b, auth: {anonymous: true}}\napis: [{<<: *d, name: a}, {<<: [*d], name: c, path_prefix: /c}]\nbackends: [{name: b, instances: [{url: \"http://127.0.0.1:1\"}]}]\n",
		"size_overflow":     "server: {limits: {max_body: 99999999999999999999GiB, max_header_bytes: -1, max_uri: 1.5KiB}}\n",
		"duration_overflow": "server: {timeouts: {read: 9999999999999h, write: -5s, idle: 1e9s, shutdown: 3d}}\n",
		"inline_secret":     "consumers: [{name: c, keys: {primary: {value: plain-text-key}}}]\n",
		"secret_file":       "consumers: [{name: c, keys: {primary: {value: \"${file:/etc/shadow}\"}}}]\n",
		"secret_env":        "consumers: [{name: c, keys: {primary: {value: \"${env:}\"}, secondary: {sha256: zz}}}]\n",
		"duplicate_keys":    "apis: []\napis: []\n",
		"unknown_key":       "servr: {}\n",
		"non_utf8":          "apis: [{name: \"\xff\xfe\", backend: \"\xc0\xae\"}]\n",
		"nul_byte":          "apis: [{name: \"a\x00b\"}]\n",
		"tabs":              "apis:\n\t- name: a\n",
		"multi_document":    "apis: []\n---\napis: [{name: evil}]\n",
		"null_document":     "~\n",
		"scalar_document":   "hello\n",
		"key_is_map":        "{a: 1}: 2\n",
		"huge_string":       "apis: [{name: \"" + strings.Repeat("a", 100000) + "\"}]\n",
		"path_confusion":    "apis: [{name: a, path_prefix: \"/a/../b\", backend: b, auth: {anonymous: true}}, {name: c, path_prefix: \"/%2e%2e\", backend: b, auth: {anonymous: true}}]\n",
		"case_insensitive":  "apis: [{name: a, path_prefix: /Admin, case_insensitive_paths: true, backend: b, auth: {anonymous: true}}, {name: c, path_prefix: /admin, backend: b, auth: {anonymous: true}}]\n",
		"alg_none":          "identity_providers: [{name: i, issuer: \"https://i\", audiences: [a], algorithms: [none, HS256, rs256]}]\n",
		"anchor_on_key":     "&k name: a\n",
		"yaml_tags":         "apis: !!map {name: !!binary aGVsbG8=}\n",
		"bools_as_strings":  "apis: [{name: a, pass_credential: \"yes\", auth: {anonymous: \"true\"}}]\n",
		"numbers_as_hosts":  "apis: [{name: a, hosts: [1, 2.5, 0x10], backend: b, auth: {anonymous: true}}]\n",
	}
}

func TestSeedCorpus_Config(t *testing.T) {
	seeds := map[string][]any{}
	for name, doc := range configSeeds() {
		seeds[name] = []any{[]byte(doc)}
	}
	seedcorpus.CheckSeedCorpus(t, "FuzzDecodeValidate", seeds)
}
