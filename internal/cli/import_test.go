package cli

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

const importHeader = `identity_providers:
  - name: idp
    issuer: https://idp.example.com
    audiences: [orders]
backends:
  - name: orders-be
    instances: [{url: "http://127.0.0.1:9000"}]
`

func TestImportOpenAPI_OutputValidates(t *testing.T) {
	for _, spec := range []string{"../gateway/testdata/orders-openapi.yaml", "../gateway/testdata/orders-openapi31.yaml"} {
		t.Run(spec, func(t *testing.T) {
			var out, errs bytes.Buffer
			code := Main(context.Background(), []string{"import", "openapi", spec, "--backend", "orders-be"}, nil, &out, &errs)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs.String())
			}
			yaml := out.String()
			for _, want := range []string{
				"name: orders\n", "path_prefix: /shop\n", "backend: orders-be\n", "validate_request: true",
				"- name: listOrders\n        method: GET\n        path: /orders\n        auth:\n          credentials: [jwt]\n          require:\n            scopes:\n              all_of: ['orders:read']",
				"- name: createOrder\n        method: POST\n        path: /orders\n        auth:\n          credentials: [jwt, api_key]",
				"path: /orders/{order_id}",
				"- name: health\n        method: GET\n        path: /health\n        auth:\n          anonymous: true",
			} {
				if !strings.Contains(yaml, want) {
					t.Errorf("output lacks %q:\n%s", want, yaml)
				}
			}
			if !strings.Contains(errs.String(), "alternative requirements are merged") {
				t.Errorf("no note about merged alternatives: %q", errs.String())
			}
			doc, diags := config.Parse("imported.yaml", []byte(importHeader+yaml))
			if diags == nil {
				_, diags = gateway.Compile(context.Background(), doc, &gateway.Runtime{Logger: slog.New(slog.DiscardHandler), Secrets: secret.Local{}})
			}
			if diags != nil {
				t.Fatalf("the imported configuration does not validate:\n%v\n%s", diags, yaml)
			}
		})
	}
}

func TestImportOpenAPI_Errors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no backend", []string{"import", "openapi", "../gateway/testdata/orders-openapi.yaml"}, "--backend is required"},
		{"missing file", []string{"import", "openapi", "nope.yaml", "--backend", "b"}, "nope.yaml"},
		{"bad name", []string{"import", "openapi", "../gateway/testdata/orders-openapi.yaml", "--backend", "b", "--name", "no spaces"}, "not valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			if code := Main(context.Background(), tc.args, nil, &out, &errs); code == 0 || !strings.Contains(errs.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want an error mentioning %q", code, errs.String(), tc.want)
			}
		})
	}
}
