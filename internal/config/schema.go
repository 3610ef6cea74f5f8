package config

import (
	"encoding/json"

	"github.com/invopop/jsonschema"
)

// Schema returns the JSON Schema of the configuration file, for editors.
// It is generated from the same types the decoder fills, so it cannot
// drift from what is accepted.
func Schema() ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag:               "yaml",
		RequiredFromJSONSchemaTags: true,
		DoNotReference:             false,
		ExpandedStruct:             true,
	}
	s := r.Reflect(&Config{})
	s.ID = "https://gatehouse.dev/schema/config.json"
	s.Title = "Gatehouse configuration"
	s.Description = "The declarative configuration of a Gatehouse gateway. See docs/configuration.md."
	return json.MarshalIndent(s, "", "  ")
}

// JSONSchema describes a Duration.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     `^([0-9]+d)?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*$|^0$`,
		Description: "A duration with units: 250ms, 30s, 5m, 1h30m, 2d.",
		Examples:    []any{"30s", "5m", "1h"},
	}
}

// JSONSchema describes a Size.
func (Size) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		OneOf: []*jsonschema.Schema{
			{Type: "integer", Minimum: json.Number("0")},
			{Type: "string", Pattern: `^[0-9]+ ?(B|KiB|MiB|GiB|KB|MB|GB)?$`},
		},
		Description: "A size in bytes, with an optional unit: 512, 64KiB, 10MiB, 1MB.",
	}
}

// JSONSchema describes a Secret.
func (Secret) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     `^\$\{(env|file|vault):.+\}$`,
		Description: "A secret reference: ${env:NAME}, ${file:/path} or ${vault:mount/data/path#field}. Inline values are refused.",
	}
}
