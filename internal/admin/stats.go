package admin

import (
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/observe"
)

// StatsHandler serves GET /v1/stats: the latency statistics of every API
// and operation as JSON. Query: window=1m (default) or 1h; series=true
// adds one point per second (1m) or per minute (1h) to each API.
func StatsHandler(stats *observe.Stats) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stats == nil {
			writeProblem(w, notFound("Statistics are not enabled."))
			return
		}
		q := r.URL.Query()
		win := observe.LastMinute
		switch q.Get("window") {
		case "", "1m":
		case "1h":
			win = observe.LastHour
		default:
			writeProblem(w, badRequest("window is 1m or 1h."))
			return
		}
		series := q.Get("series") == "true" || q.Get("series") == "1"
		writeJSON(w, http.StatusOK, stats.Report(win, series))
	})
}

// stats serves /v1/stats behind the API's authentication (viewer).
func (a *API) stats(c *call) error {
	if a.o.Stats == nil {
		return notFound("Statistics are not enabled.")
	}
	a.o.Stats.ServeHTTP(c.w, c.r)
	return nil
}
