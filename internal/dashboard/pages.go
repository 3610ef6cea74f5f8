package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
)

func windowOf(r *http.Request) observe.Window {
	if r.URL.Query().Get("window") == "1h" {
		return observe.LastHour
	}
	return observe.LastMinute
}

// serveOverview shows requests/s, error rates and latency per API.
func (d *Dashboard) serveOverview(w http.ResponseWriter, r *http.Request, s *Session) {
	win := windowOf(r)
	var rep *observe.Report
	if d.o.Stats != nil {
		rep = d.o.Stats.Report(win, false)
	}
	anomalies, showAnomalies := d.overviewAnomalies(r)
	changes, showSuggestions := d.overviewSuggestions(r)
	d.render(w, r, s, http.StatusOK, "overview", "Overview", map[string]any{
		"Report": rep, "Window": win.String(), "Connected": d.o.Stats != nil,
		"Anomalies": anomalies, "ShowAnomalies": showAnomalies,
		"Changes": changes, "ShowSuggestions": showSuggestions,
	})
}

// serveStatsJSON feeds the live charts.
func (d *Dashboard) serveStatsJSON(w http.ResponseWriter, r *http.Request, s *Session) {
	if d.o.Stats == nil {
		writeJSONError(w, http.StatusNotFound, "statistics are not connected")
		return
	}
	writeJSON(w, http.StatusOK, d.o.Stats.Report(windowOf(r), true))
}

// opView is one operation on the APIs page.
type opView struct {
	Name, Methods, Path string
	Auth                string
	Requires            []string
	Policies            []string
	Source              string
	Match               bool
	// Latency of the last minute, when the operation had traffic.
	Stats *observe.Summary
}

type apiView struct {
	Name, Backend, Prefix, Hosts string
	Source                       string
	Ops                          []opView
}

func matchText(m *config.Match) string {
	if m == nil {
		return ""
	}
	var parts []string
	if len(m.AnyOf) > 0 {
		parts = append(parts, "any of "+strings.Join(m.AnyOf, ", "))
	}
	if len(m.AllOf) > 0 {
		parts = append(parts, "all of "+strings.Join(m.AllOf, ", "))
	}
	return strings.Join(parts, "; ")
}

// describeAuth renders an effective auth requirement.
func describeAuth(a *config.Auth) (string, []string) {
	if a == nil {
		return "none (refused)", nil
	}
	if a.Anonymous {
		return "anonymous", nil
	}
	auth := strings.Join(a.Credentials, " or ")
	if len(a.Issuers) > 0 {
		auth += " (issuers: " + strings.Join(a.Issuers, ", ") + ")"
	}
	var req []string
	if q := a.Require; q != nil {
		if t := matchText(q.Groups); t != "" {
			req = append(req, "groups: "+t)
		}
		if t := matchText(q.Roles); t != "" {
			req = append(req, "roles: "+t)
		}
		if t := matchText(q.Scopes); t != "" {
			req = append(req, "scopes: "+t)
		}
		for _, k := range sortedKeys(q.Claims) {
			req = append(req, "claim "+k+": "+matchText(q.Claims[k]))
		}
	}
	if len(req) == 0 {
		req = []string{"authenticated caller"}
	}
	return auth, req
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func source(doc *config.Document, path string) string {
	pos := doc.Pos(path)
	if pos.Line == 0 {
		return doc.File
	}
	return fmt.Sprintf("%s:%d", doc.File, pos.Line)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// serveAPIs lists every operation with its effective requirement, from
// the compiled snapshot.
func (d *Dashboard) serveAPIs(w http.ResponseWriter, r *http.Request, s *Session) {
	snap := d.o.Snapshot()
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	var apis []*apiView
	byName := map[string]*apiView{}
	shown := 0
	latency := map[[2]string]*observe.Summary{}
	if d.o.Stats != nil {
		for _, a := range d.o.Stats.Report(observe.LastMinute, false).APIs {
			for _, op := range a.Operations {
				if op.Requests > 0 {
					latency[[2]string{a.API, op.Operation}] = &op.Summary
				}
			}
		}
	}
	if snap != nil {
		for i, a := range snap.Doc.Config.APIs {
			v := &apiView{Name: a.Name, Backend: a.Backend, Prefix: config.NormalizePrefix(a.PathPrefix),
				Hosts: strings.Join(a.Hosts, ", "), Source: source(snap.Doc, config.Index("apis", i))}
			if v.Hosts == "" {
				v.Hosts = "any host"
			}
			apis = append(apis, v)
			byName[a.Name] = v
		}
		for _, op := range snap.Operations() {
			v := byName[op.API.Name]
			if v == nil {
				continue
			}
			auth, req := describeAuth(op.Auth)
			ov := opView{Name: op.Name, Methods: strings.Join(op.Methods, ", "), Path: op.Template, Auth: auth, Requires: req,
				Source: source(snap.Doc, op.ConfigPath), Stats: latency[[2]string{op.API.Name, op.Name}]}
			ov.Policies = append(ov.Policies, "body limit "+formatBytes(op.API.MaxBody))
			if op.API.PassCredential {
				ov.Policies = append(ov.Policies, "forwards the caller's credential")
			}
			ov.Policies = append(ov.Policies, "backend "+op.API.Backend)
			hay := strings.ToLower(strings.Join([]string{op.API.Name, op.Name, ov.Methods, ov.Path, auth, strings.Join(req, " ")}, " "))
			ov.Match = q == "" || strings.Contains(hay, q)
			if ov.Match {
				shown++
			}
			v.Ops = append(v.Ops, ov)
		}
	}
	d.render(w, r, s, http.StatusOK, "apis", "APIs", map[string]any{"APIs": apis, "Query": r.URL.Query().Get("q"), "Shown": shown})
}

// serveBackends lists backend instances.
func (d *Dashboard) serveBackends(w http.ResponseWriter, r *http.Request, s *Session) {
	data := map[string]any{"Connected": d.o.Backends != nil}
	if d.o.Backends != nil {
		ctx, cancel := ctxTimeout(r)
		defer cancel()
		bs, err := d.o.Backends.Backends(ctx)
		if err != nil {
			d.fail(w, r, s, http.StatusBadGateway, "The backend list could not be read.", err)
			return
		}
		data["Backends"] = bs
	}
	d.render(w, r, s, http.StatusOK, "backends", "Backends", data)
}

// serveConsumers lists consumers and, for admins, the forms to change
// their keys.
func (d *Dashboard) serveConsumers(w http.ResponseWriter, r *http.Request, s *Session) {
	d.renderConsumers(w, r, s, http.StatusOK, "")
}

func (d *Dashboard) renderConsumers(w http.ResponseWriter, r *http.Request, s *Session, status int, problem string) {
	data := map[string]any{"Connected": d.o.Consumers != nil, "Admin": s.Role >= RoleAdmin, "Problem": problem,
		"Done": doneMessage(r.URL.Query())}
	if d.o.Consumers != nil {
		ctx, cancel := ctxTimeout(r)
		defer cancel()
		cs, err := d.o.Consumers.List(ctx)
		if err != nil {
			d.fail(w, r, s, http.StatusBadGateway, "The consumers could not be read.", err)
			return
		}
		data["Consumers"] = cs
	}
	d.render(w, r, s, status, "consumers", "Consumers & keys", data)
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

// sourceError renders a source's refusal: a person's mistake is shown on
// the consumers page, anything else is a friendly error.
func (d *Dashboard) sourceError(w http.ResponseWriter, r *http.Request, s *Session, err error) {
	var ie *InvalidError
	switch {
	case errors.As(err, &ie):
		d.renderConsumers(w, r, s, http.StatusUnprocessableEntity, ie.Msg)
	case errors.Is(err, ErrNotFound):
		d.renderConsumers(w, r, s, http.StatusNotFound, "There is no such consumer.")
	default:
		d.fail(w, r, s, http.StatusBadGateway, "The change could not be made.", err)
	}
}

func (d *Dashboard) serveCreateConsumer(w http.ResponseWriter, r *http.Request, s *Session) {
	if d.o.Consumers == nil {
		d.fail(w, r, s, http.StatusNotFound, "Consumers are not connected to this dashboard.", nil)
		return
	}
	nc := NewConsumer{Name: strings.TrimSpace(r.PostForm.Get("name")), Groups: splitList(r.PostForm.Get("groups")), Scopes: splitList(r.PostForm.Get("scopes"))}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	key, err := d.o.Consumers.Create(ctx, s.User, nc)
	if err != nil {
		d.sourceError(w, r, s, err)
		return
	}
	d.render(w, r, s, http.StatusOK, "key", "New key", map[string]any{"Consumer": nc.Name, "Slot": "primary", "Key": key, "Created": true})
}

func (d *Dashboard) serveRotate(w http.ResponseWriter, r *http.Request, s *Session) {
	if d.o.Consumers == nil {
		d.fail(w, r, s, http.StatusNotFound, "Consumers are not connected to this dashboard.", nil)
		return
	}
	name, slot := r.PathValue("name"), r.PostForm.Get("slot")
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	key, err := d.o.Consumers.Rotate(ctx, s.User, name, slot)
	if err != nil {
		d.sourceError(w, r, s, err)
		return
	}
	d.render(w, r, s, http.StatusOK, "key", "New key", map[string]any{"Consumer": name, "Slot": slot, "Key": key})
}

func (d *Dashboard) serveRevoke(w http.ResponseWriter, r *http.Request, s *Session) {
	if d.o.Consumers == nil {
		d.fail(w, r, s, http.StatusNotFound, "Consumers are not connected to this dashboard.", nil)
		return
	}
	name, slot := r.PathValue("name"), r.PostForm.Get("slot")
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	if err := d.o.Consumers.Revoke(ctx, s.User, name, slot); err != nil {
		d.sourceError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/ui/consumers?"+url.Values{"revoked": {slot}, "consumer": {name}}.Encode(), http.StatusSeeOther)
}

// doneMessage is the confirmation the consumers page shows after a
// revocation, written here from the slot and the consumer's name, both
// checked: a link cannot make the dashboard show text of its choosing.
func doneMessage(q url.Values) string {
	slot, name := q.Get("revoked"), q.Get("consumer")
	if slot == "" || validSlot(slot) != nil || !config.ValidName(name) {
		return ""
	}
	return "Revoked the " + slot + " key of " + name + "."
}

// parseWhen reads a datetime-local value (taken as UTC) or RFC 3339.
func parseWhen(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, true
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// serveAudit searches the audit log.
func (d *Dashboard) serveAudit(w http.ResponseWriter, r *http.Request, s *Session) {
	qv := r.URL.Query()
	data := map[string]any{"Connected": d.o.Audit != nil, "Actor": qv.Get("actor"), "Action": qv.Get("action"),
		"Since": qv.Get("since"), "Until": qv.Get("until")}
	if d.o.Audit == nil {
		d.render(w, r, s, http.StatusOK, "audit", "Audit log", data)
		return
	}
	q := AuditQuery{Actor: strings.TrimSpace(qv.Get("actor")), Action: strings.TrimSpace(qv.Get("action")), Limit: 500}
	var ok1, ok2 bool
	q.Since, ok1 = parseWhen(qv.Get("since"))
	q.Until, ok2 = parseWhen(qv.Get("until"))
	if !ok1 || !ok2 {
		data["Problem"] = "A time is written like 2026-01-31T14:05 (UTC)."
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	entries, err := d.o.Audit.Search(ctx, q)
	if err != nil {
		d.fail(w, r, s, http.StatusBadGateway, "The audit log could not be searched.", err)
		return
	}
	chain, err := d.o.Audit.Verify(ctx)
	if err != nil {
		d.fail(w, r, s, http.StatusBadGateway, "The audit log's chain could not be verified.", err)
		return
	}
	data["Entries"], data["Chain"] = entries, chain
	data["Filtered"] = q.Actor != "" || q.Action != "" || !q.Since.IsZero() || !q.Until.IsZero()
	d.render(w, r, s, http.StatusOK, "audit", "Audit log", data)
}

// serveConfig shows the current version and the history.
func (d *Dashboard) serveConfig(w http.ResponseWriter, r *http.Request, s *Session) {
	snap := d.o.Snapshot()
	data := map[string]any{"Connected": d.o.History != nil}
	if snap != nil {
		data["Current"] = map[string]any{"Version": snap.Version, "Loaded": snap.Loaded, "File": snap.Doc.File}
	}
	if d.o.History != nil {
		ctx, cancel := ctxTimeout(r)
		defer cancel()
		vs, err := d.o.History.Versions(ctx)
		if err != nil {
			d.fail(w, r, s, http.StatusBadGateway, "The configuration history could not be read.", err)
			return
		}
		data["Versions"] = vs
		if len(vs) >= 2 {
			data["DefaultFrom"], data["DefaultTo"] = vs[1].ID, vs[0].ID
		}
	}
	d.render(w, r, s, http.StatusOK, "config", "Config", data)
}

func (d *Dashboard) serveConfigVersion(w http.ResponseWriter, r *http.Request, s *Session) {
	if d.o.History == nil {
		d.fail(w, r, s, http.StatusNotFound, "The configuration history is not connected.", nil)
		return
	}
	id := r.PathValue("id")
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	text, err := d.o.History.Text(ctx, id)
	if errors.Is(err, ErrNotFound) {
		d.fail(w, r, s, http.StatusNotFound, "There is no configuration version "+id+".", nil)
		return
	}
	if err != nil {
		d.fail(w, r, s, http.StatusBadGateway, "The configuration could not be read.", err)
		return
	}
	d.render(w, r, s, http.StatusOK, "version", "Config "+id, map[string]any{"ID": id, "Lines": strings.Split(strings.TrimSuffix(text, "\n"), "\n")})
}

func (d *Dashboard) serveConfigDiff(w http.ResponseWriter, r *http.Request, s *Session) {
	if d.o.History == nil {
		d.fail(w, r, s, http.StatusNotFound, "The configuration history is not connected.", nil)
		return
	}
	from, to := r.URL.Query().Get("from"), r.URL.Query().Get("to")
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	a, err1 := d.o.History.Text(ctx, from)
	b, err2 := d.o.History.Text(ctx, to)
	if errors.Is(err1, ErrNotFound) || errors.Is(err2, ErrNotFound) {
		d.fail(w, r, s, http.StatusNotFound, "Choose two versions from the history to compare.", nil)
		return
	}
	if err := errors.Join(err1, err2); err != nil {
		d.fail(w, r, s, http.StatusBadGateway, "The configuration could not be read.", err)
		return
	}
	lines := Diff(a, b)
	added, removed := DiffStats(lines)
	d.render(w, r, s, http.StatusOK, "diff", "Compare "+from+" with "+to, map[string]any{
		"From": from, "To": to, "Lines": Fold(lines, 3), "Added": added, "Removed": removed,
	})
}
