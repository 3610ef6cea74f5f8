package config

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated key reference in docs/configuration.md")

const (
	docsFile   = "../../docs/configuration.md"
	beginMark  = "<!-- BEGIN GENERATED REFERENCE: go test ./internal/config -run TestReferenceDocs -update-docs -->"
	endMark    = "<!-- END GENERATED REFERENCE -->"
	anchorNote = "Generated from the configuration types; every key accepted by the decoder is listed."
)

// TestReferenceDocs keeps the key reference in docs/configuration.md equal
// to the keys the decoder accepts, with their descriptions.
func TestReferenceDocs(t *testing.T) {
	doc, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated reference markers", docsFile)
	}
	want := beginMark + "\n\n" + anchorNote + "\n\n" + reference() + "\n" + endMark
	got := s[i : j+len(endMark)]
	if got == want {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(docsFile, []byte(s[:i]+want+s[j+len(endMark):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("the key reference in %s is stale; run: go test ./internal/config -run TestReferenceDocs -update-docs", docsFile)
}

func reference() string {
	var b strings.Builder
	t := reflect.TypeFor[Config]()
	for _, f := range structInfoFor(t).fields {
		sf := t.FieldByIndex(f.index)
		fmt.Fprintf(&b, "### `%s`\n\n%s\n\n| key | type | description |\n| --- | --- | --- |\n", f.name, sf.Tag.Get("jsonschema_description"))
		writeRows(&b, sf.Type, f.name, map[reflect.Type]bool{})
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func writeRows(b *strings.Builder, t reflect.Type, path string, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.String:
		writeRows(b, t.Elem(), path+"[]", seen)
		return
	case t.Kind() == reflect.Map:
		writeRows(b, t.Elem(), path+".<name>", seen)
		return
	case t.Kind() != reflect.Struct || isScalar(t):
		return
	}
	if seen[t] {
		return
	}
	seen[t] = true
	defer delete(seen, t)
	for _, f := range structInfoFor(t).fields {
		sf := t.FieldByIndex(f.index)
		p := path + "." + f.name
		desc := sf.Tag.Get("jsonschema_description")
		if f.required {
			desc = "**Required.** " + desc
		}
		if e := enumOf(sf); e != "" {
			desc += " One of: " + e + "."
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", p, typeName(sf.Type), strings.ReplaceAll(desc, "|", `\|`))
		writeRows(b, sf.Type, p, seen)
	}
}

func isScalar(t reflect.Type) bool {
	return t == reflect.TypeFor[Duration]() || t == reflect.TypeFor[Size]() || t == reflect.TypeFor[Secret]()
}

func enumOf(sf reflect.StructField) string {
	var vals []string
	for part := range strings.SplitSeq(sf.Tag.Get("jsonschema"), ",") {
		if v, ok := strings.CutPrefix(part, "enum="); ok {
			vals = append(vals, "`"+v+"`")
		}
	}
	return strings.Join(slices.Compact(vals), ", ")
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Duration]():
		return "duration"
	case t == reflect.TypeFor[Size]():
		return "size"
	case t == reflect.TypeFor[Secret]():
		return "secret reference"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "list of strings"
		}
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map of " + typeName(t.Elem())
	case reflect.Struct:
		return "object"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	}
	return t.String()
}
