package dashboard

import (
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// anomalyLimit is how many events the anomalies page lists.
const anomalyLimit = 200

// kindRE is what a kind may look like; anything else is refused before
// it reaches the source.
var kindRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// anomalyLabels name the kinds on the page.
var anomalyLabels = map[string]string{
	"rate_spike":    "Rate spikes",
	"auth_failures": "Refused credentials",
	"enumeration":   "Path enumeration",
	"first_access":  "First access",
}

func anomalyLabel(kind string) string {
	if l, ok := anomalyLabels[kind]; ok {
		return l
	}
	l := strings.ReplaceAll(kind, "_", " ")
	if l == "" {
		return l
	}
	return strings.ToUpper(l[:1]) + l[1:]
}

// anomalyKindList returns the kinds to list: the known ones in their
// order, then any other the source counts (a kind newer than this page).
func anomalyKindList(counts map[string]int64) []string {
	out := slices.Clone(AnomalyKinds)
	var extra []string
	for k := range counts {
		if !slices.Contains(out, k) && kindRE.MatchString(k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	return append(out, extra...)
}

// anomalyKindView is one kind in the counts and the filter.
type anomalyKindView struct {
	Kind, Label string
	Count       int64
	Current     bool
}

// anomalyTotal is the number of events flagged since start.
func anomalyTotal(counts map[string]int64) int64 {
	var n int64
	for _, c := range counts {
		n += c
	}
	return n
}

// serveAnomalies lists the latest anomalies, newest first, with the
// counts per kind; ?kind= keeps one kind.
func (d *Dashboard) serveAnomalies(w http.ResponseWriter, r *http.Request, s *Session) {
	kind := r.URL.Query().Get("kind")
	refuse := func(kinds []string) {
		d.fail(w, r, s, http.StatusBadRequest, "There is no such kind of anomaly. The kinds are "+strings.Join(kinds, ", ")+".", nil)
	}
	if kind != "" && !kindRE.MatchString(kind) {
		refuse(AnomalyKinds)
		return
	}
	var rep AnomalyReport
	connected := d.o.Anomalies != nil
	if connected {
		ctx, cancel := ctxTimeout(r)
		defer cancel()
		var err error
		rep, err = d.o.Anomalies.Anomalies(ctx, kind, anomalyLimit)
		switch {
		case errors.Is(err, ErrNotConnected):
			connected, rep = false, AnomalyReport{}
		case err != nil:
			d.fail(w, r, s, http.StatusBadGateway, "The anomalies could not be read.", err)
			return
		}
	}
	kinds := anomalyKindList(rep.Counts)
	if kind != "" && !slices.Contains(kinds, kind) {
		refuse(kinds)
		return
	}
	if len(rep.Events) > anomalyLimit {
		rep.Events = rep.Events[:anomalyLimit]
	}
	views := make([]anomalyKindView, 0, len(kinds))
	for _, k := range kinds {
		views = append(views, anomalyKindView{Kind: k, Label: anomalyLabel(k), Count: rep.Counts[k], Current: k == kind})
	}
	d.render(w, r, s, http.StatusOK, "anomalies", "Anomalies", map[string]any{
		"Connected": connected, "Report": rep, "Kinds": views, "Kind": kind, "Label": anomalyLabel(kind),
		"Total": anomalyTotal(rep.Counts), "Limit": anomalyLimit, "Full": len(rep.Events) == anomalyLimit,
	})
}

// overviewAnomalies returns the number of anomalies flagged since start,
// for the overview, and whether to show it: when the source answers and
// detection is on or has flagged something. A failure is only logged:
// the overview is about traffic.
func (d *Dashboard) overviewAnomalies(r *http.Request) (int64, bool) {
	if d.o.Anomalies == nil {
		return 0, false
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	rep, err := d.o.Anomalies.Anomalies(ctx, "", 0)
	if err != nil {
		if !errors.Is(err, ErrNotConnected) {
			d.logger.Warn("dashboard: the anomaly counts could not be read", "error", err.Error())
		}
		return 0, false
	}
	n := anomalyTotal(rep.Counts)
	return n, rep.Enabled || n > 0
}
