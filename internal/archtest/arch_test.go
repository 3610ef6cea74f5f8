// Package archtest checks the shape of the code base: the direction of
// imports between packages, and that every package says what it is for.
package archtest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/gatehouse-dev/gatehouse/"

// forbidden lists, for each data-plane package, the packages it must not
// import: the data plane never depends on the control plane, the process
// wiring, the command line or development-only code.
var forbidden = map[string][]string{
	"internal/config":       append([]string{"internal/gateway", "internal/policy", "internal/identity"}, controlPlane...),
	"internal/policy":       append([]string{"internal/gateway", "internal/devmode", "internal/devissuer"}, controlPlane...),
	"internal/identity":     append([]string{"internal/gateway", "internal/policy", "internal/devmode", "internal/devissuer"}, controlPlane...),
	"internal/gateway":      append([]string{"internal/devmode", "internal/devissuer"}, controlPlane...),
	"internal/upstream":     append([]string{"internal/gateway", "internal/devmode"}, controlPlane...),
	"internal/observe":      append([]string{"internal/gateway"}, controlPlane...),
	"internal/secret":       append([]string{"internal/gateway"}, controlPlane...),
	"internal/ratelimit":    append([]string{"internal/gateway"}, controlPlane...),
	"internal/quota":        append([]string{"internal/gateway"}, controlPlane...),
	"internal/backendtoken": append([]string{"internal/gateway"}, controlPlane...),
	"internal/dashboard":    {"internal/server", "internal/admin", "internal/cli", "internal/devmode", "internal/devissuer", "internal/store/sqlite", "internal/store/postgres"},
	"internal/h1":           append([]string{"internal/config", "internal/gateway", "internal/policy", "internal/identity", "internal/upstream", "internal/observe"}, controlPlane...),
}

// controlPlane is what no data-plane package imports: the process wiring,
// the admin API, the command line, the dashboard and a concrete store
// (the data plane sees storage only through package store's interfaces).
var controlPlane = []string{"internal/server", "internal/admin", "internal/cli", "internal/dashboard", "internal/store/sqlite", "internal/store/postgres"}

type pkg struct {
	dir     string
	imports map[string]bool
	hasDoc  bool
}

func loadPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	root := filepath.Join("..", "..")
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		p := pkgs[rel]
		if p == nil {
			p = &pkg{dir: rel, imports: map[string]bool{}}
			pkgs[rel] = p
		}
		if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
			p.hasDoc = true
		}
		for _, im := range f.Imports {
			ip := strings.Trim(im.Path.Value, `"`)
			if rest, ok := strings.CutPrefix(ip, module); ok {
				p.imports[rest] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestImportDirection(t *testing.T) {
	pkgs := loadPackages(t)
	for dir, bad := range forbidden {
		p := pkgs[dir]
		if p == nil {
			t.Errorf("package %s not found", dir)
			continue
		}
		for _, b := range bad {
			for im := range p.imports {
				if im == b || strings.HasPrefix(im, b+"/") {
					t.Errorf("%s imports %s; the data plane must not depend on it", dir, im)
				}
			}
		}
	}
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for dir, p := range loadPackages(t) {
		if !p.hasDoc {
			t.Errorf("package %s has no package doc comment saying what it is for", dir)
		}
	}
}

func TestNoUtilityPackages(t *testing.T) {
	for dir := range loadPackages(t) {
		switch filepath.Base(dir) {
		case "util", "utils", "common", "helpers", "models", "misc":
			t.Errorf("package %s: name packages for what they provide", dir)
		}
	}
}
