package config

import "time"

// anomalies checks the anomalies section.
func (v *validator) anomalies() {
	a := &v.c.Anomalies
	const p = "anomalies"
	v.durationRange(Field(p, "window"), a.Window, 10*time.Second, time.Hour)
	v.intRange(Field(p, "max_callers"), a.MaxCallers, 100, 10_000_000)
	v.intRange(Field(p, "max_events_per_window"), a.MaxEventsPerWindow, 1, 100_000)
	window := a.Window.Or(DefaultAnomalyWindow)

	rs := &a.RateSpike
	rp := Field(p, "rate_spike")
	if v.written(Field(rp, "factor")) && (rs.Factor < 1.5 || rs.Factor > 1000) {
		v.r.Errorf(Field(rp, "factor"), "must be between 1.5 and 1000")
	}
	v.intRange(Field(rp, "min_requests"), rs.MinRequests, 1, 1_000_000_000)
	v.durationRange(Field(rp, "baseline"), rs.Baseline, 2*window, 7*24*time.Hour)
	v.durationRange(Field(rp, "warmup"), rs.Warmup, 0, 7*24*time.Hour)
	v.anomalyAction(Field(rp, "action"), rs.Action)

	v.intRange(Field(Field(p, "auth_failures"), "threshold"), a.AuthFailures.Threshold, 2, 1_000_000_000)
	v.anomalyAction(Field(Field(p, "auth_failures"), "action"), a.AuthFailures.Action)
	v.intRange(Field(Field(p, "enumeration"), "threshold"), a.Enumeration.Threshold, 2, MaxAnomalyEnumeration)
	v.anomalyAction(Field(Field(p, "enumeration"), "action"), a.Enumeration.Action)

	fp := Field(p, "first_access")
	v.durationRange(Field(fp, "remember"), a.FirstAccess.Remember, time.Hour, 87600*time.Hour)
	v.durationRange(Field(fp, "learning"), a.FirstAccess.Learning, 0, 8760*time.Hour)

	tp := Field(p, "throttle")
	v.intRange(Field(tp, "rate"), a.Throttle.Rate, 1, 1_000_000)
	v.durationRange(Field(tp, "period"), a.Throttle.Period, time.Second, time.Hour)
	v.durationRange(Field(tp, "duration"), a.Throttle.Duration, time.Second, 24*time.Hour)
}

func (v *validator) anomalyAction(path, action string) {
	if action != "" && action != "log" && action != "throttle" {
		v.r.Errorf(path, "must be log or throttle, not %q", action)
	}
}
