package config

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Change is one difference between two configurations, by setting:
// Path names it as a reviewer reads it, list items by their names
// (apis[orders].operations[getOrder].auth.require.scopes), Old and New
// are its values ("" where it is absent on that side).
type Change struct {
	Path    string `json:"path"`
	Old     string `json:"old,omitempty"`
	New     string `json:"new,omitempty"`
	Added   bool   `json:"added,omitempty"`
	Removed bool   `json:"removed,omitempty"`
}

// Compare returns what changes from old to new, setting by setting,
// sorted by path: values that differ, settings written on one side only,
// and items of named lists (APIs, operations, backends, consumers,
// identity providers, rate limits, quotas…) added or removed whole. A
// setting not written and one written with its default differ: the
// file says something else. Secrets are their references, never values.
func Compare(old, new *Config) []Change {
	a, b := flatten(old), flatten(new)
	var out []Change
	items := map[string]bool{} // whole items added or removed: what is in them is not listed
	for p := range a.items {
		if _, ok := b.items[p]; !ok {
			items[p] = true
		}
	}
	for p := range b.items {
		if _, ok := a.items[p]; !ok {
			items[p] = true
		}
	}
	within := func(p string) bool {
		for q := range items {
			if strings.HasPrefix(p, q) && len(p) > len(q) && (p[len(q)] == '.' || p[len(q)] == '[') {
				return true
			}
		}
		return false
	}
	for p := range items {
		if within(p) {
			continue
		}
		if _, ok := a.items[p]; ok {
			out = append(out, Change{Path: p, Removed: true, Old: a.items[p]})
		} else {
			out = append(out, Change{Path: p, Added: true, New: b.items[p]})
		}
	}
	for p, v := range a.values {
		if w, ok := b.values[p]; !ok {
			if !within(p) {
				out = append(out, Change{Path: p, Old: v})
			}
		} else if v != w {
			out = append(out, Change{Path: p, Old: v, New: w})
		}
	}
	for p, w := range b.values {
		if _, ok := a.values[p]; !ok && !within(p) {
			out = append(out, Change{Path: p, New: w})
		}
	}
	// The same items in another order: one change for the list.
	for p, x := range a.orders {
		y, ok := b.orders[p]
		if !ok || within(p) || slices.Equal(x, y) || len(x) != len(y) {
			continue
		}
		if sx, sy := slices.Sorted(slices.Values(x)), slices.Sorted(slices.Values(y)); slices.Equal(sx, sy) {
			out = append(out, Change{Path: p + " (order)", Old: "[" + strings.Join(x, ", ") + "]", New: "[" + strings.Join(y, ", ") + "]"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// flat is a configuration as its settings: each scalar (or list of
// scalars) by path, and each named list item by path with its name.
type flat struct {
	values map[string]string
	items  map[string]string
	// orders holds each named list's item names in order: where order
	// matters (rate limits are checked in it), a reorder is a change.
	orders map[string][]string
}

func flatten(c *Config) flat {
	f := flat{values: map[string]string{}, items: map[string]string{}, orders: map[string][]string{}}
	if c != nil {
		f.walk("", reflect.ValueOf(c).Elem())
	}
	return f
}

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
	secretType   = reflect.TypeFor[Secret]()
)

func (f *flat) walk(path string, v reflect.Value) {
	switch v.Type() {
	case durationType:
		if d := v.Interface().(Duration); d.Set {
			f.values[path] = d.Duration.String()
		}
		return
	case sizeType:
		if s := v.Interface().(Size); s.Set {
			f.values[path] = strconv.FormatInt(s.Bytes, 10) + " bytes"
		}
		return
	case secretType:
		if s := v.Interface().(Secret); !s.IsZero() {
			f.values[path] = s.String()
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			f.walk(path, v.Elem())
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				if sf.Anonymous {
					f.walk(path, v.Field(i))
				}
				continue
			}
			f.walk(join(path, name), v.Field(i))
		}
	case reflect.Map:
		keys := v.MapKeys()
		for _, k := range keys {
			f.walk(path+"["+fmt.Sprint(k.Interface())+"]", v.MapIndex(k))
		}
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			return
		}
		if scalar(v.Type().Elem()) {
			parts := make([]string, v.Len())
			for i := range parts {
				parts[i] = fmt.Sprint(v.Index(i).Interface())
			}
			f.values[path] = "[" + strings.Join(parts, ", ") + "]"
			return
		}
		seen := map[string]bool{}
		for i := 0; i < v.Len(); i++ {
			e := v.Index(i)
			key := itemKey(e)
			if key == "" || seen[key] {
				key = strconv.Itoa(i)
			}
			seen[key] = true
			f.orders[path] = append(f.orders[path], key)
			p := path + "[" + key + "]"
			f.items[p] = key
			f.walk(p, e)
		}
	default:
		if !v.IsZero() {
			f.values[path] = fmt.Sprint(v.Interface())
		}
	}
}

// itemKey is a list item's name: its name field, or for an operation
// without one its methods and path, as the gateway names it.
func itemKey(e reflect.Value) string {
	for e.Kind() == reflect.Pointer {
		if e.IsNil() {
			return ""
		}
		e = e.Elem()
	}
	if e.Kind() != reflect.Struct {
		return ""
	}
	if op, ok := e.Interface().(Operation); ok && op.Name == "" {
		return strings.Join(op.OperationMethods(), ",") + " " + op.Path
	}
	if n := e.FieldByName("Name"); n.IsValid() && n.Kind() == reflect.String {
		return n.String()
	}
	return ""
}

func scalar(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Float64:
		return true
	}
	return false
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
