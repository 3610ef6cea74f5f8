package dashboard

import (
	"cmp"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// suggestionLabels name the actions on the page.
var suggestionLabels = map[string]string{
	"raise": "Raise",
	"add":   "Add",
	"lower": "Lower",
	"keep":  "Keep",
	"wait":  "Wait",
}

// suggestionBadges are the classes of the actions' badges: those that
// change a setting stand out, keep and wait are muted. An action this
// page does not know gets the plain badge.
var suggestionBadges = map[string]string{
	"raise": "state state-raise",
	"add":   "state state-add",
	"lower": "state state-lower",
	"keep":  "state state-quiet",
	"wait":  "state state-quiet",
}

// suggestionActionView is one action in the counts and the filter.
type suggestionActionView struct {
	Action, Label string
	Count         int
	Current       bool
}

// suggestionRow is one suggestion in the table.
type suggestionRow struct {
	Suggestion
	Badge string
}

// suggestionRank orders the suggestions as SuggestionActions lists the
// actions; an unknown action comes last.
func suggestionRank(a string) int {
	if i := slices.Index(SuggestionActions, a); i >= 0 {
		return i
	}
	return len(SuggestionActions)
}

// serveSuggestions lists the suggested settings, those that change
// something first, with the counts per action; ?action= keeps one action.
func (d *Dashboard) serveSuggestions(w http.ResponseWriter, r *http.Request, s *Session) {
	action := r.URL.Query().Get("action")
	if action != "" && !slices.Contains(SuggestionActions, action) {
		d.fail(w, r, s, http.StatusBadRequest, "There is no such action. The actions are "+strings.Join(SuggestionActions, ", ")+".", nil)
		return
	}
	var minSamples uint64
	if v := r.URL.Query().Get("min_samples"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 1 || n > 1_000_000 {
			d.fail(w, r, s, http.StatusBadRequest, "min_samples must be a number between 1 and 1000000.", nil)
			return
		}
		minSamples = n
	}
	var rep SuggestionReport
	connected := d.o.Suggestions != nil
	if connected {
		ctx, cancel := ctxTimeout(r)
		defer cancel()
		var err error
		rep, err = d.o.Suggestions.Suggestions(ctx, minSamples)
		switch {
		case errors.Is(err, ErrNotConnected):
			connected, rep = false, SuggestionReport{}
		case err != nil:
			d.fail(w, r, s, http.StatusBadGateway, "The suggestions could not be read.", err)
			return
		}
	}
	counts := map[string]int{}
	rows := make([]suggestionRow, 0, len(rep.Items))
	for _, it := range rep.Items {
		counts[it.Action]++
		if action == "" || it.Action == action {
			badge, ok := suggestionBadges[it.Action]
			if !ok {
				badge = "state"
			}
			rows = append(rows, suggestionRow{Suggestion: it, Badge: badge})
		}
	}
	slices.SortStableFunc(rows, func(a, b suggestionRow) int { return cmp.Compare(suggestionRank(a.Action), suggestionRank(b.Action)) })
	views := make([]suggestionActionView, 0, len(SuggestionActions))
	for _, a := range SuggestionActions {
		views = append(views, suggestionActionView{Action: a, Label: suggestionLabels[a], Count: counts[a], Current: a == action})
	}
	d.render(w, r, s, http.StatusOK, "suggestions", "Suggestions", map[string]any{
		"Connected": connected, "Report": rep, "Rows": rows, "Actions": views, "Action": action,
		"Total": len(rep.Items), "MinSamples": minSamples,
	})
}

// overviewSuggestions returns how many suggestions would change a
// setting (raise, add, lower), for the overview, and whether to show it:
// when the source answers and has any suggestion. A failure is only
// logged: the overview is about traffic.
func (d *Dashboard) overviewSuggestions(r *http.Request) (int, bool) {
	if d.o.Suggestions == nil {
		return 0, false
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	rep, err := d.o.Suggestions.Suggestions(ctx, 0)
	if err != nil {
		if !errors.Is(err, ErrNotConnected) {
			d.logger.Warn("dashboard: the suggestions could not be read", "error", err.Error())
		}
		return 0, false
	}
	n := 0
	for _, it := range rep.Items {
		switch it.Action {
		case "raise", "add", "lower":
			n++
		}
	}
	return n, len(rep.Items) > 0
}
