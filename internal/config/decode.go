package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Document is a decoded configuration file: the Config and where each of
// its keys was written.
type Document struct {
	File   string
	Config *Config
	// Source is the text the document was decoded from.
	Source []byte
	// positions maps a dotted path (apis[0].backend) to where its value is.
	positions map[string]Pos
}

// Pos returns the position of the value at path, or of its nearest parent
// that has one.
func (d *Document) Pos(path string) Pos {
	for {
		if p, ok := d.positions[path]; ok {
			return p
		}
		if path == "" {
			return Pos{}
		}
		path = parentPath(path)
	}
}

func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// MaxFileSize bounds a configuration file, so that a hostile or mistaken
// input cannot exhaust memory.
const MaxFileSize = 8 << 20

// Decode parses YAML into a Config, strictly: unknown keys, duplicate keys,
// wrong types and malformed values are all reported, each with its line,
// column and path. It reports every problem it finds, not only the first.
// The returned document is usable for position lookups even when there are
// diagnostics.
func Decode(file string, data []byte) (*Document, Diagnostics) {
	doc := &Document{File: file, Config: &Config{}, Source: data, positions: map[string]Pos{}}
	if len(data) > MaxFileSize {
		return doc, Diagnostics{{File: file, Msg: fmt.Sprintf("file is %d bytes; the limit is %d", len(data), MaxFileSize)}}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && err != io.EOF {
		return doc, Diagnostics{syntaxDiagnostic(file, err)}
	}
	// One document: a second one (after ---) would be silently ignored.
	// Empty ones (a trailing ---) are nothing to ignore.
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if err == io.EOF {
			break
		}
		if err != nil {
			return doc, Diagnostics{syntaxDiagnostic(file, err)}
		}
		if len(next.Content) > 0 && !(next.Content[0].Kind == yaml.ScalarNode && next.Content[0].Tag == "!!null" && next.Content[0].Value == "") {
			return doc, Diagnostics{{File: file, Pos: Pos{Line: next.Line, Col: next.Column},
				Msg: "a second YAML document: the configuration is one document (remove the --- and merge it, or put it in a file of its own)"}}
		}
	}
	d := &decoder{doc: doc, budget: aliasBudget(&root)}
	if root.Kind == 0 { // empty document
		return doc, nil
	}
	node := &root
	if node.Kind == yaml.DocumentNode {
		if len(node.Content) == 0 {
			return doc, nil
		}
		node = node.Content[0]
	}
	d.value(node, reflect.ValueOf(doc.Config).Elem(), "")
	return doc, d.diags
}

// syntaxDiagnostic turns a yaml.v3 syntax error ("yaml: line 3: ...") into a
// diagnostic with a position.
func syntaxDiagnostic(file string, err error) Diagnostic {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	d := Diagnostic{File: file, Msg: "syntax error: " + msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				d.Pos = Pos{Line: n, Col: 1}
				d.Msg = "syntax error: " + strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return d
}

// nodeDecoder is implemented by scalar types with their own syntax
// (durations, sizes, secret references).
type nodeDecoder interface {
	decodeNode(n *yaml.Node) error
}

var nodeDecoderType = reflect.TypeFor[nodeDecoder]()

var anyType = reflect.TypeFor[any]()

type decoder struct {
	doc   *Document
	diags Diagnostics
	depth int
	// budget is how many more values may be decoded (see aliasBudget).
	budget int
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.diags = append(d.diags, Diagnostic{
		File: d.doc.File,
		Pos:  Pos{Line: n.Line, Col: n.Column},
		Path: path,
		Msg:  fmt.Sprintf(format, args...),
	})
}

// maxDepth bounds nesting through aliases, which YAML lets a small file
// expand into a huge tree ("billion laughs").
const maxDepth = 64

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		d.errorf(n, path, "nesting is deeper than %d levels", maxDepth)
		return
	}
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.errorf(n, path, "aliases expand the document to too many values (an alias bomb?)")
		}
		return
	}
	d.doc.positions[path] = Pos{Line: n.Line, Col: n.Column}

	if v.CanAddr() && v.Addr().Type().Implements(nodeDecoderType) {
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a scalar value, found %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(nodeDecoder).decodeNode(n); err != nil {
			d.errorf(n, path, "%v", err)
		}
		return
	}

	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		p := reflect.New(v.Type().Elem())
		d.value(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.structValue(n, v, path)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, found %s", shapeName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.value(item, s.Index(i), Index(path, i))
		}
		v.Set(s)
	case reflect.Map:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "expected a mapping, found %s", shapeName(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		d.eachPair(n, path, func(key string, kn, vn *yaml.Node) {
			ev := reflect.New(v.Type().Elem()).Elem()
			d.value(vn, ev, Key(path, key))
			m.SetMapIndex(reflect.ValueOf(key), ev)
		})
		v.Set(m)
	case reflect.String:
		s, ok := d.scalar(n, path, "a string")
		if !ok {
			return
		}
		if n.Tag == "!!bool" {
			d.errorf(n, path, "expected a string, found the boolean %s (quote it if you mean the text)", n.Value)
			return
		}
		v.SetString(s)
	case reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		if n.Tag != "!!bool" {
			d.errorf(n, path, "expected true or false, found %q", s)
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(s))
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		s, ok := d.scalar(n, path, "an integer")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 0, 64)
		if err != nil || n.Tag != "!!int" || v.OverflowInt(i) {
			d.errorf(n, path, "expected an integer, found %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		s, ok := d.scalar(n, path, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || (n.Tag != "!!int" && n.Tag != "!!float") || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(n, path, "expected a number, found %q", s)
			return
		}
		v.SetFloat(f)
	case reflect.Interface:
		// Only x- extension keys decode into any; their content is free.
	default:
		panic(fmt.Sprintf("config: unsupported field type %s at %s", v.Type(), path))
	}
}

// scalar returns n's text, reporting an error if n is not a scalar.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected %s, found %s", want, kindName(n))
		return "", false
	}
	if isNull(n) {
		return "", false
	}
	return n.Value, true
}

// eachPair calls fn for each key/value of a mapping, resolving merge keys
// (<<) and reporting non-string and duplicate keys.
func (d *decoder) eachPair(n *yaml.Node, path string, fn func(key string, kn, vn *yaml.Node)) {
	seen := map[string]bool{}
	var walk func(m *yaml.Node, merged bool)
	walk = func(m *yaml.Node, merged bool) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			kn, vn := m.Content[i], m.Content[i+1]
			if kn.Kind == yaml.ScalarNode && kn.Tag == "!!merge" {
				src := vn
				if src.Kind == yaml.AliasNode {
					src = src.Alias
				}
				switch src.Kind {
				case yaml.MappingNode:
					walk(src, true)
				case yaml.SequenceNode:
					for _, s := range src.Content {
						if s.Kind == yaml.AliasNode {
							s = s.Alias
						}
						if s.Kind == yaml.MappingNode {
							walk(s, true)
						}
					}
				default:
					d.errorf(vn, path, "a merge key (<<) needs a mapping")
				}
				continue
			}
			if kn.Kind != yaml.ScalarNode {
				d.errorf(kn, path, "keys must be strings, found %s", kindName(kn))
				continue
			}
			key := kn.Value
			if seen[key] {
				if !merged {
					d.errorf(kn, Key(path, key), "duplicate key %q", key)
				}
				continue
			}
			seen[key] = true
			fn(key, kn, vn)
		}
	}
	// Keys written in the mapping itself win over merged ones, so walk the
	// explicit keys first.
	explicit := &yaml.Node{Kind: yaml.MappingNode}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Tag == "!!merge" {
			merges = append(merges, n.Content[i], n.Content[i+1])
		} else {
			explicit.Content = append(explicit.Content, n.Content[i], n.Content[i+1])
		}
	}
	walk(explicit, false)
	if len(merges) > 0 {
		walk(&yaml.Node{Kind: yaml.MappingNode, Content: merges}, true)
	}
}

func (d *decoder) structValue(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		d.checkRequired(n, v.Type(), path, nil)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, found %s", shapeName(n))
		return
	}
	info := structInfoFor(v.Type())
	present := map[string]bool{}
	d.eachPair(n, path, func(key string, kn, vn *yaml.Node) {
		f, ok := info.byName[key]
		if !ok && path == "" && strings.HasPrefix(key, "x-") {
			// Top-level x- keys are free for YAML anchors to live in.
			d.value(vn, reflect.New(anyType).Elem(), Field(path, key))
			return
		}
		if !ok {
			msg := fmt.Sprintf("unknown key %q", key)
			if s := suggest(key, info.names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(kn, Field(path, key), "%s", msg)
			return
		}
		present[key] = true
		d.value(vn, v.FieldByIndex(f.index), Field(path, key))
	})
	d.checkRequired(n, v.Type(), path, present)
}

func (d *decoder) checkRequired(n *yaml.Node, t reflect.Type, path string, present map[string]bool) {
	for _, f := range structInfoFor(t).fields {
		if f.required && !present[f.name] {
			d.errorf(n, Field(path, f.name), "missing required key %q", f.name)
		}
	}
}

type fieldInfo struct {
	name     string
	index    []int // through embedded ",inline" structs
	required bool
}

type structInfo struct {
	fields []fieldInfo
	byName map[string]fieldInfo
	names  []string
}

var structInfos sync.Map // reflect.Type → *structInfo

func structInfoFor(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byName: map[string]fieldInfo{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if sf.Anonymous && name == "" && opts == "inline" && sf.Type.Kind() == reflect.Struct {
			// An embedded struct's keys belong to the enclosing mapping.
			for _, f := range structInfoFor(sf.Type).fields {
				f.index = append([]int{i}, f.index...)
				si.fields = append(si.fields, f)
				si.byName[f.name] = f
				si.names = append(si.names, f.name)
			}
			continue
		}
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		f := fieldInfo{name: name, index: []int{i}, required: slices.Contains(strings.Split(sf.Tag.Get("jsonschema"), ","), "required")}
		si.fields = append(si.fields, f)
		si.byName[name] = f
		si.names = append(si.names, name)
	}
	structInfos.Store(t, si)
	return si
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// shapeName is kindName without a scalar's value: where a list or a
// mapping is expected, a scalar is often a secret written in place of
// its reference (keys: {primary: gk_live_...}), which a diagnostic must
// not repeat; its position says where it is.
func shapeName(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return kindName(n)
	}
	switch n.Tag {
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "true or false"
	}
	return "a string"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	default:
		return "a document"
	}
}

// suggest returns the candidate closest to key by edit distance, if it is
// close enough to be a likely typo.
func suggest(key string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if dist := editDistance(key, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var errEmpty = errors.New("empty value")
