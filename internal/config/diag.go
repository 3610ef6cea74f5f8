package config

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in a configuration file. Line and Col start at 1; zero
// means unknown.
type Pos struct {
	Line int
	Col  int
}

// Diagnostic is one problem found in a configuration, located by file,
// position and the dotted path of the key (apis[0].backend).
type Diagnostic struct {
	File string
	Pos  Pos
	Path string
	Msg  string
}

// String formats d as file:line:col: path: message.
func (d Diagnostic) String() string {
	var b strings.Builder
	if d.File != "" {
		b.WriteString(d.File)
		b.WriteByte(':')
	}
	if d.Pos.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", d.Pos.Line, d.Pos.Col)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Diagnostics is every problem found in a configuration. As an error it
// prints one diagnostic per line.
type Diagnostics []Diagnostic

func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Sort orders diagnostics by file and position, keeping the order of
// diagnostics at the same place.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		return a.Pos.Col < b.Pos.Col
	})
}

// Reporter collects diagnostics for one document, placing each at the
// position of the key its path names.
type Reporter struct {
	doc   *Document
	diags Diagnostics
}

// NewReporter returns a reporter for doc.
func NewReporter(doc *Document) *Reporter { return &Reporter{doc: doc} }

// Errorf records a problem at path.
func (r *Reporter) Errorf(path, format string, args ...any) {
	r.diags = append(r.diags, Diagnostic{
		File: r.doc.File,
		Pos:  r.doc.Pos(path),
		Path: path,
		Msg:  fmt.Sprintf(format, args...),
	})
}

// Diagnostics returns what was recorded, sorted by position, or nil.
func (r *Reporter) Diagnostics() Diagnostics {
	if len(r.diags) == 0 {
		return nil
	}
	r.diags.Sort()
	return r.diags
}

// Field joins a parent path and a key.
func Field(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// Index joins a parent path and a list index.
func Index(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}

// Key joins a parent path and a map key, quoting keys that are not plain
// identifiers.
func Key(parent, key string) string {
	plain := key != ""
	for _, c := range key {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			plain = false
			break
		}
	}
	if plain {
		return Field(parent, key)
	}
	return fmt.Sprintf("%s[%q]", parent, key)
}
