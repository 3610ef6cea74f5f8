package observe

import (
	"context"
	"log/slog"
	"net/netip"
	"time"
)

// Access is what the access log says about one request.
type Access struct {
	Time             time.Time
	RequestID        string
	TraceID          string // the W3C trace ID sent to the backend
	API              string
	Operation        string
	Method           string
	Path             string
	Status           int
	Duration         time.Duration
	UpstreamDuration time.Duration
	Upstream         string
	Attempts         int
	BytesOut         int64
	ClientIP         netip.Addr
	Subject          string
	Credential       string
	Consumer         string
	Denial           string
	Error            error
}

// AccessLog writes one line per request. It never logs query strings,
// headers or bodies, so no credential can reach it.
type AccessLog struct {
	logger *slog.Logger // NewAccessLog: any slog handler (dev mode's text)
	sink   *jsonSink    // NewJSONAccessLog: the fast, buffered JSON writer
}

// NewAccessLog returns an access log writing through logger; nil disables
// it. NewJSONAccessLog is the one for production: it formats without
// allocating and batches writes.
func NewAccessLog(logger *slog.Logger) *AccessLog {
	return &AccessLog{logger: logger}
}

// Close writes what is buffered. The log takes no lines after it.
func (l *AccessLog) Close() error {
	if l == nil || l.sink == nil {
		return nil
	}
	return l.sink.close()
}

// WriteErrors is how many writes of buffered lines failed (their lines
// were dropped); always 0 for a log that is not NewJSONAccessLog's.
func (l *AccessLog) WriteErrors() uint64 {
	if l == nil || l.sink == nil {
		return 0
	}
	return l.sink.errs.Load()
}

// Log writes a.
func (l *AccessLog) Log(a *Access) {
	if l == nil {
		return
	}
	if l.sink != nil {
		l.sink.log(a)
		return
	}
	if l.logger == nil {
		return
	}
	attrs := make([]slog.Attr, 0, 18)
	attrs = append(attrs,
		slog.String("request_id", a.RequestID),
		slog.String("trace_id", a.TraceID),
		slog.String("method", a.Method),
		slog.String("path", a.Path),
		slog.Int("status", a.Status),
		slog.Float64("duration_ms", float64(a.Duration.Microseconds())/1000),
		slog.Int64("bytes", a.BytesOut),
		slog.String("client_ip", clientIP(a.ClientIP)),
	)
	if a.API != "" {
		attrs = append(attrs, slog.String("api", a.API), slog.String("operation", a.Operation))
	}
	if a.Upstream != "" {
		attrs = append(attrs, slog.String("upstream", a.Upstream),
			slog.Float64("upstream_ms", float64(a.UpstreamDuration.Microseconds())/1000))
	}
	if a.Attempts > 0 {
		attrs = append(attrs, slog.Int("attempts", a.Attempts))
	}
	if a.Credential != "" {
		attrs = append(attrs, slog.String("credential", a.Credential), slog.String("subject", a.Subject))
	}
	if a.Consumer != "" {
		attrs = append(attrs, slog.String("consumer", a.Consumer))
	}
	if a.Denial != "" {
		attrs = append(attrs, slog.String("denial", a.Denial))
	}
	if a.Error != nil {
		attrs = append(attrs, slog.String("error", a.Error.Error()))
	}
	l.logger.LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
}

func clientIP(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
