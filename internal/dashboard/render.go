package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// pageNames are the page templates; each is parsed with layout.html.
var pageNames = []string{"overview", "apis", "backends", "consumers", "key", "audit", "anomalies", "suggestions", "config", "version", "diff", "login", "error"}

var funcs = template.FuncMap{
	"ms": func(v float64) string {
		switch {
		case v == 0:
			return "–"
		case v < 10:
			return fmt.Sprintf("%.2f", v)
		case v < 100:
			return fmt.Sprintf("%.1f", v)
		}
		return fmt.Sprintf("%.0f", v)
	},
	"rate": func(v float64) string {
		if v < 10 {
			return fmt.Sprintf("%.2f", v)
		}
		return fmt.Sprintf("%.0f", v)
	},
	"pct": func(v float64) string {
		if v == 0 {
			return "0%"
		}
		return fmt.Sprintf("%.1f%%", v*100)
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join": strings.Join,
	"list": func(v ...string) []string { return v },
	"add1": func(i int) int { return i + 1 },
	"hasSlot": func(c Consumer, slot string) bool {
		for _, k := range c.Keys {
			if k.Slot == slot {
				return true
			}
		}
		return false
	},
	"op": func(o DiffOp) string { return string(o) },
	"opclass": func(o DiffOp) string {
		switch o {
		case Insert:
			return "add"
		case Delete:
			return "del"
		}
		return "same"
	},
	"lineno": func(n int) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprint(n)
	},
	"slug": func(s string) string {
		var b strings.Builder
		for _, c := range strings.ToLower(s) {
			if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
				b.WriteRune(c)
			} else {
				b.WriteByte('-')
			}
		}
		return b.String()
	},
}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// navItems are the main navigation, in order.
var navItems = []struct{ ID, Label, Href string }{
	{"overview", "Overview", "/ui/"},
	{"apis", "APIs", "/ui/apis"},
	{"backends", "Backends", "/ui/backends"},
	{"consumers", "Consumers & keys", "/ui/consumers"},
	{"audit", "Audit log", "/ui/audit"},
	{"anomalies", "Anomalies", "/ui/anomalies"},
	{"suggestions", "Suggestions", "/ui/suggestions"},
	{"config", "Config", "/ui/config"},
}

// view is what every page template gets.
type view struct {
	Title   string
	Page    string
	Nav     any
	Session *Session
	Data    any
	Version string
}

// render writes a page; templates execute into a buffer first so that a
// template error never leaves half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, s *Session, status int, page, title string, data any) {
	t := d.pages[page]
	v := view{Title: title, Page: page, Nav: navItems, Session: s, Data: data}
	if snap := d.o.Snapshot(); snap != nil {
		v.Version = snap.Version
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		d.logger.Error("dashboard: rendering failed", "page", page, "error", err.Error())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("The page could not be shown. The gateway's log says why.\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
