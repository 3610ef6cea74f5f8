// Package quota counts requests per calendar period (hour, day, week,
// month, in a time zone) and persists the counters, so that a restart does
// not reset them. Counters live in memory and are written to a Store
// periodically and on Close; gateways that share a store instead add
// their new counts to shared totals every sync interval (SharedStore,
// Registry.OpenShared).
package quota

import (
	"fmt"
	"time"

	_ "time/tzdata" // IANA zones, also where the system has none (minimal containers)
)

// Period is a calendar period.
type Period uint8

// Periods.
const (
	Hour Period = iota + 1
	Day
	Week // starts on Monday (ISO 8601)
	Month
)

// ParsePeriod parses hour, day, week or month.
func ParsePeriod(s string) (Period, error) {
	switch s {
	case "hour":
		return Hour, nil
	case "day":
		return Day, nil
	case "week":
		return Week, nil
	case "month":
		return Month, nil
	}
	return 0, fmt.Errorf("unknown period %q", s)
}

func (p Period) String() string {
	switch p {
	case Hour:
		return "hour"
	case Day:
		return "day"
	case Week:
		return "week"
	case Month:
		return "month"
	}
	return "unknown"
}

// Bounds returns the start of the period that holds t in loc, and the start
// of the next one. Days, weeks and months start at local midnight; across a
// daylight-saving change a day lasts 23 or 25 hours. An hour is a clock
// hour in loc (zones with a 30- or 45-minute offset start hours there).
func (p Period) Bounds(t time.Time, loc *time.Location) (start, end time.Time) {
	t = t.In(loc)
	y, m, d := t.Date()
	switch p {
	case Hour:
		start = time.Date(y, m, d, t.Hour(), 0, 0, 0, loc)
		// Add real time: around a DST change the next clock hour may be
		// ambiguous, but one hour later is always the next period.
		end = start.Add(time.Hour)
	case Day:
		start = time.Date(y, m, d, 0, 0, 0, 0, loc)
		end = time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case Week:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		start = time.Date(y, m, d-back, 0, 0, 0, 0, loc)
		end = time.Date(y, m, d-back+7, 0, 0, 0, 0, loc)
	case Month:
		start = time.Date(y, m, 1, 0, 0, 0, 0, loc)
		end = time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return start, end
}
