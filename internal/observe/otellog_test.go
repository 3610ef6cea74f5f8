package observe

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// An OTEL_EXPORTER_OTLP_HEADERS entry that does not parse is reported
// through the gateway's logger, without the entry (a collector's key).
func TestTracers_OTelErrorsNeverShowTheirValues(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization: Bearer hunter2-collector-key")
	var logs lockedBuf
	r := NewTracers(TracersOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	defer r.Close(t.Context())
	if _, err := r.Get(TracingOptions{Endpoint: "http://127.0.0.1:1/v1/traces", SampleRatio: 1, ServiceName: "t", Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "OpenTelemetry: parse headers") {
		t.Fatalf("the bad header entry was not reported through the logger:\n%s", out)
	}
	if strings.Contains(out, "hunter2") {
		t.Fatalf("the log shows the header's value:\n%s", out)
	}
}
