package observe

import (
	"context"
	"log/slog"
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
	ClientIP         string
	Subject          string
	Credential       string
	Consumer         string
	Denial           string
	Error            error
}

// AccessLog writes one JSON line per request. It never logs query
// strings, headers or bodies, so no credential can reach it.
type AccessLog struct {
	logger *slog.Logger
}

// NewAccessLog returns an access log writing through logger; nil disables it.
func NewAccessLog(logger *slog.Logger) *AccessLog {
	return &AccessLog{logger: logger}
}

// Log writes a.
func (l *AccessLog) Log(a *Access) {
	if l == nil || l.logger == nil {
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
		slog.String("client_ip", a.ClientIP),
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
