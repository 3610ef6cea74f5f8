package observe

import "github.com/prometheus/client_golang/prometheus"

// RegisterTraceExportFailures registers gatehouse_trace_export_failures_total
// on reg and returns it.
func RegisterTraceExportFailures(reg *prometheus.Registry) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_trace_export_failures_total",
		Help: "Failed exports of trace spans to the OTLP collector (the spans of a failed export are dropped).",
	})
	reg.MustRegister(c)
	return c
}

// ConnectionLimit is what the connection metrics read
// (connlimit.Limit).
type ConnectionLimit interface {
	Open() int
	Max() int
	Waits() uint64
}

// RegisterConnectionLimit registers the connection metrics of a group of
// listeners ("public" or "admin"), read from l, on reg.
func RegisterConnectionLimit(reg *prometheus.Registry, group string, l ConnectionLimit) {
	labels := prometheus.Labels{"listeners": group}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_connections_open", ConstLabels: labels,
			Help: "Client connections open, by group of listeners (public or admin).",
		}, func() float64 { return float64(l.Open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_connections_max", ConstLabels: labels,
			Help: "The most client connections open at once (server.limits.max_connections for the public listeners).",
		}, func() float64 { return float64(l.Max()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_connection_limit_waits_total", ConstLabels: labels,
			Help: "Accepted connections that found every slot taken and waited, unserved, for one.",
		}, func() float64 { return float64(l.Waits()) }),
	)
}

// RegisterAccessLogWriteErrors registers gatehouse_access_log_write_errors_total,
// read from l, on reg.
func RegisterAccessLogWriteErrors(reg *prometheus.Registry, l *AccessLog) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gatehouse_access_log_write_errors_total",
		Help: "Failed writes of the access log's buffered lines (the lines of a failed write are dropped).",
	}, func() float64 { return float64(l.WriteErrors()) }))
}
