package config

import "time"

// Anomalies configures anomaly detection (docs/anomalies.md).
type Anomalies struct {
	Enabled            bool               `yaml:"enabled" jsonschema_description:"Follow every caller and flag unusual traffic: each detector below is on unless it says disabled. Default false: no detection work on the request path."`
	Window             Duration           `yaml:"window" jsonschema_description:"The counting window of the detectors. Default 1m; between 10s and 1h."`
	MaxCallers         int                `yaml:"max_callers" jsonschema_description:"Most callers followed at once (a caller is a verified identity, or a client address when there is none); beyond it the least recently seen are forgotten with their baselines; callers under a throttle are kept while it lasts (up to a quarter of the table). An IPv6 address counts as its /64. Default 100000; between 100 and 10000000. Fixed at start."`
	MaxEventsPerWindow int                `yaml:"max_events_per_window" jsonschema_description:"Most anomalies written to the log and the audit log in one window; beyond it they are counted in metrics and the dashboard only, and one line says how many were held back. Default 100; between 1 and 100000."`
	RateSpike          AnomalyRateSpike   `yaml:"rate_spike" jsonschema_description:"A caller sending far more requests in a window than its own baseline."`
	AuthFailures       AnomalyThreshold   `yaml:"auth_failures" jsonschema_description:"A caller (or, before authentication, a client address) with many requests refused with 401 or 403 in a window. Default threshold 20; at least 2."`
	Enumeration        AnomalyThreshold   `yaml:"enumeration" jsonschema_description:"A caller asking for many distinct paths that are answered 404 in a window (a sweep of IDs or routes). Default threshold 50; between 2 and 1000."`
	FirstAccess        AnomalyFirstAccess `yaml:"first_access" jsonschema_description:"A verified caller's first successful request to an operation marked sensitive (apis[].sensitive, apis[].operations[].sensitive)."`
	Throttle           AnomalyThrottle    `yaml:"throttle" jsonschema_description:"What a caller flagged by a detector whose action is throttle may still send, and for how long."`
}

// AnomalyRateSpike configures the rate-spike detector.
type AnomalyRateSpike struct {
	Disabled    bool     `yaml:"disabled" jsonschema_description:"Turn this detector off."`
	Factor      float64  `yaml:"factor" jsonschema_description:"A window with more than factor times the caller's baseline fires. Default 5; between 1.5 and 1000."`
	MinRequests int      `yaml:"min_requests" jsonschema_description:"A window with fewer requests never fires. Default 100; between 1 and 1000000000."`
	Baseline    Duration `yaml:"baseline" jsonschema_description:"The time constant of the baseline, a moving average of the caller's requests per window. Default 1h; between two windows and 7 days."`
	Warmup      Duration `yaml:"warmup" jsonschema_description:"A caller first seen less than this long ago has no baseline yet and is never flagged for a spike. Default 30m; at most 7 days."`
	Action      string   `yaml:"action" jsonschema:"enum=log,enum=throttle" jsonschema_description:"log (default): record it. throttle: record it and throttle the caller (see throttle)."`
}

// AnomalyThreshold configures a detector that fires at a count per window.
type AnomalyThreshold struct {
	Disabled  bool   `yaml:"disabled" jsonschema_description:"Turn this detector off."`
	Threshold int    `yaml:"threshold" jsonschema_description:"The count in one window that fires."`
	Action    string `yaml:"action" jsonschema:"enum=log,enum=throttle" jsonschema_description:"log (default): record it. throttle: record it and throttle the caller (see throttle)."`
}

// AnomalyFirstAccess configures the first-access detector.
type AnomalyFirstAccess struct {
	Disabled bool     `yaml:"disabled" jsonschema_description:"Turn this detector off."`
	Remember Duration `yaml:"remember" jsonschema_description:"How long a caller stays known to a sensitive operation: a caller that uses it at least once every remember is never reported again, and one silent for between remember and twice remember is new again (records are kept per span of remember, in the store, shared by gateways on storage.postgres). Default 2160h (90 days); between 1h and 87600h."`
	Learning Duration `yaml:"learning" jsonschema_description:"For this long after first-access detection is first enabled on the store, callers are remembered but not reported, so that turning it on does not flag every existing caller. Default 24h; at most 8760h."`
}

// AnomalyThrottle is what a throttled caller may still send.
type AnomalyThrottle struct {
	Rate     int      `yaml:"rate" jsonschema_description:"Requests allowed per period while throttled (more are refused with 429 anomaly_throttled and Retry-After). Default 10; between 1 and 1000000."`
	Period   Duration `yaml:"period" jsonschema_description:"The period of rate. Default 1m; between 1s and 1h."`
	Duration Duration `yaml:"duration" jsonschema_description:"How long a throttle lasts after the anomaly; a new anomaly of the caller extends it. Default 10m; between 1s and 24h."`
}

// Defaults of the anomalies keys.
const (
	DefaultAnomalyWindow         = time.Minute
	DefaultAnomalyMaxCallers     = 100_000
	DefaultAnomalyMaxEvents      = 100
	DefaultAnomalySpikeFactor    = 5.0
	DefaultAnomalySpikeMin       = 100
	DefaultAnomalySpikeBaseline  = time.Hour
	DefaultAnomalySpikeWarmup    = 30 * time.Minute
	DefaultAnomalyAuthFailures   = 20
	DefaultAnomalyEnumeration    = 50
	DefaultAnomalyRemember       = 90 * 24 * time.Hour
	DefaultAnomalyLearning       = 24 * time.Hour
	DefaultAnomalyThrottleRate   = 10
	DefaultAnomalyThrottlePeriod = time.Minute
	DefaultAnomalyThrottleFor    = 10 * time.Minute
	MaxAnomalyEnumeration        = 1000
)

// AnyOn reports whether the detection is enabled with at least one
// detector on.
func (a *Anomalies) AnyOn() bool {
	return a.Enabled && (!a.RateSpike.Disabled || !a.AuthFailures.Disabled || !a.Enumeration.Disabled || !a.FirstAccess.Disabled)
}
