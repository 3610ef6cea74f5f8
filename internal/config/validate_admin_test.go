package config

import (
	"strings"
	"testing"
)

func TestValidate_AdminAccessAndRegistry(t *testing.T) {
	const hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
	base := "backends: [{name: b, instances: [{url: \"http://10.0.0.1\"}]}]\napis: [{name: a, backend: b, auth: {anonymous: true}}]\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"insecure_local on loopback", "server: {admin: {address: \"127.0.0.1:9901\", insecure_local: true}}\n", ""},
		{"insecure_local on the default address", "server: {admin: {insecure_local: true}}\n", ""},
		{"insecure_local on localhost", "server: {admin: {address: \"localhost:9901\", insecure_local: true}}\n", ""},
		{"insecure_local on every interface", "server: {admin: {address: \":9901\", insecure_local: true}}\n", "3:52: server.admin.insecure_local: insecure_local needs server.admin.address on a loopback address"},
		{"insecure_local on a private address", "server: {admin: {address: \"10.0.0.5:9901\", insecure_local: true}}\n", "insecure_local needs server.admin.address on a loopback address"},
		{"registrar without services", "server: {admin: {auth: {api_keys: [{name: k, sha256: \"" + hash + "\", role: registrar}]}}}\n", "the registrar role needs services"},
		{"viewer with services", "server: {admin: {auth: {api_keys: [{name: k, sha256: \"" + hash + "\", role: viewer, services: [x]}]}}}\n", "services only apply to the registrar role"},
		{"unknown role", "server: {admin: {auth: {api_keys: [{name: k, sha256: \"" + hash + "\", role: root}]}}}\n", "unknown role \"root\""},
		{"key without hash", "server: {admin: {auth: {api_keys: [{name: k, role: admin}]}}}\n", "set sha256"},
		{"unknown issuer", "server: {admin: {auth: {jwt: {issuers: [corp], roles: [{role: admin, when: {groups: {any_of: [a]}}}]}}}}\n", "unknown identity provider \"corp\""},
		{"admin audience of the issuer", "identity_providers: [{name: corp, issuer: \"https://idp.example.com\", audiences: [api, admin]}]\nserver: {admin: {auth: {jwt: {issuers: [corp], audiences: [admin], roles: [{role: admin, when: {groups: {any_of: [a]}}}]}}}}\n", ""},
		{"admin audience no issuer accepts", "identity_providers: [{name: corp, issuer: \"https://idp.example.com\", audiences: [api]}]\nserver: {admin: {auth: {jwt: {issuers: [corp], audiences: [admin], roles: [{role: admin, when: {groups: {any_of: [a]}}}]}}}}\n", "\"admin\" is not among the audiences of the issuers listed"},
		{"empty when", "identity_providers: [{name: corp, issuer: \"https://id.example.com\", audiences: [x]}]\nserver: {admin: {auth: {jwt: {issuers: [corp], roles: [{role: admin, when: {}}]}}}}\n", "a role is never granted to every token"},
		{"bad cidr", "registry: {allowed_cidrs: [10.0.0.1/8]}\n", "has host bits set"},
		{"ttl bounds", "registry: {default_ttl: 20m}\n", "must not be longer than registry.max_ttl"},
		{"registry backend without static instances", "backends: [{name: r, registry: {service: orders}}]\napis: [{name: a, backend: r, auth: {anonymous: true}}]\n", ""},
		{"bad registry service", "backends: [{name: r, registry: {service: \"a b\"}}]\napis: [{name: a, backend: r, auth: {anonymous: true}}]\n", "service name \"a b\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := tc.yaml
			if !strings.Contains(y, "backends:") {
				y = base + y
			}
			_, diags := Parse("t.yaml", []byte(y))
			got := ""
			if diags != nil {
				got = diags.Error()
			}
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Fatalf("diagnostics:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}

func TestIsLoopbackHostPort(t *testing.T) {
	for in, want := range map[string]bool{
		"127.0.0.1:9901": true, "[::1]:80": true, "localhost": true, "LOCALHOST:9901": true,
		"[::ffff:127.0.0.1]:1": true, "127.0.0.2": true,
		"10.0.0.1:9901": false, "evil.example:9901": false, "localhost.evil.example": false, "": false,
	} {
		if got := IsLoopbackHostPort(in); got != want {
			t.Errorf("IsLoopbackHostPort(%q) = %v, want %v", in, got, want)
		}
	}
}
