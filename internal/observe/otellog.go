package observe

import (
	"log/slog"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
)

// routeOTelLogs sends OpenTelemetry's own error messages to logger,
// without their key-value pairs: those can hold what they complain about,
// such as an entry of OTEL_EXPORTER_OTLP_HEADERS (a collector's API key)
// that does not parse, which OpenTelemetry's default logger printed to
// stderr. Its informational messages are dropped. OpenTelemetry has one
// logger per process: the last registry made sets it.
func routeOTelLogs(logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	otel.SetLogger(logr.New(otelSink{logger}))
}

// otelSink is a logr.LogSink that keeps a message and its error only.
type otelSink struct{ logger *slog.Logger }

func (otelSink) Init(logr.RuntimeInfo)            {}
func (otelSink) Enabled(level int) bool           { return false }
func (otelSink) Info(int, string, ...any)         {}
func (s otelSink) WithValues(...any) logr.LogSink { return s }
func (s otelSink) WithName(string) logr.LogSink   { return s }
func (s otelSink) Error(err error, msg string, _ ...any) {
	args := []any{}
	if err != nil {
		args = append(args, "error", err.Error())
	}
	s.logger.Warn("OpenTelemetry: "+msg, args...)
}
