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

// RegisterAccessLogWriteErrors registers gatehouse_access_log_write_errors_total,
// read from l, on reg.
func RegisterAccessLogWriteErrors(reg *prometheus.Registry, l *AccessLog) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gatehouse_access_log_write_errors_total",
		Help: "Failed writes of the access log's buffered lines (the lines of a failed write are dropped).",
	}, func() float64 { return float64(l.WriteErrors()) }))
}
