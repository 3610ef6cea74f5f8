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
