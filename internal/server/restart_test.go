package server

import (
	"reflect"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// A reload names each setting it changed that only a restart applies,
// and nothing else.
func TestFixedAtStart(t *testing.T) {
	base := func() *config.Server {
		return &config.Server{
			Listeners: []config.Listener{{Name: "public", Address: "127.0.0.1:8080"}},
			Limits:    config.Limits{MaxURI: size(4096)},
		}
	}
	tests := []struct {
		name   string
		change func(*config.Server)
		want   []string
	}{
		{"nothing", func(*config.Server) {}, nil},
		{"listener address", func(s *config.Server) { s.Listeners[0].Address = "127.0.0.1:8081" }, []string{"server.listeners"}},
		{"admin address", func(s *config.Server) { s.Admin.Address = "127.0.0.1:9902" }, []string{"server.admin.address"}},
		{"admin TLS on", func(s *config.Server) { s.Admin.TLS = &config.AdminTLS{CertFile: "c", KeyFile: "k"} }, []string{"server.admin.tls (on or off)"}},
		{"admin insecure_local, applied by the reload", func(s *config.Server) { s.Admin.InsecureLocal = true }, nil},
		{"timeouts", func(s *config.Server) { s.Timeouts.Idle = config.Duration{Duration: 1, Set: true} }, []string{"server.timeouts"}},
		{"max_header_bytes", func(s *config.Server) { s.Limits.MaxHeaderBytes = size(1 << 10) }, []string{"server.limits.max_header_bytes"}},
		{"max_uri raised", func(s *config.Server) { s.Limits.MaxURI = size(8192) }, []string{"server.limits.max_uri (raised, on plain-HTTP listeners)"}},
		{"max_uri lowered, applied by the gateway", func(s *config.Server) { s.Limits.MaxURI = size(1024) }, nil},
		{"two at once", func(s *config.Server) { s.Admin.Address = "127.0.0.1:9902"; s.Limits.MaxHeaderBytes = size(1 << 10) },
			[]string{"server.admin.address", "server.limits.max_header_bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base()
			tt.change(b)
			if got := fixedAtStart(base(), b); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("fixedAtStart = %q, want %q", got, tt.want)
			}
		})
	}

	// Behind TLS listeners only, the gateway's own check is the limit: a
	// raised one applies at once.
	tlsOnly := func() *config.Server {
		s := base()
		s.Listeners[0].TLS = &config.ListenerTLS{CertFile: "c", KeyFile: "k"}
		return s
	}
	b := tlsOnly()
	b.Limits.MaxURI = size(8192)
	if got := fixedAtStart(tlsOnly(), b); got != nil {
		t.Errorf("TLS listeners only, max_uri raised: %q, want nothing", got)
	}
}

func size(n int64) config.Size { return config.Size{Bytes: n, Set: true} }
