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
		{"a default written out", func(s *config.Server) {
			s.Timeouts.Idle = config.Duration{Duration: config.DefaultIdleTimeout, Set: true}
			s.Limits.MaxHeaderBytes = size(config.DefaultMaxHeaderBytes)
		}, nil},
		{"a plain listener gets tls", func(s *config.Server) { s.Listeners[0].TLS = &config.ListenerTLS{CertFile: "c", KeyFile: "k"} }, []string{"server.listeners"}},
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
	// A TLS listener's files and minimum version are read at every
	// handshake: nothing to warn about.
	b = tlsOnly()
	b.Listeners[0].TLS = &config.ListenerTLS{CertFile: "c2", KeyFile: "k2", MinVersion: "1.3"}
	if got := fixedAtStart(tlsOnly(), b); got != nil {
		t.Errorf("a TLS listener's files and min_version: %q, want nothing", got)
	}
}

// The changes a reload cannot make and the listeners in service could not
// live with are refused, each at its key.
func TestUnservable(t *testing.T) {
	started := &config.Server{
		Listeners: []config.Listener{{Name: "secure", Address: "127.0.0.1:8443", TLS: &config.ListenerTLS{CertFile: "c", KeyFile: "k"}}, {Name: "plain", Address: "127.0.0.1:8080"}},
	}
	tests := []struct{ name, yaml, want string }{
		{"unchanged", `{listeners: [{name: secure, address: "127.0.0.1:8443", tls: {cert_file: c2, key_file: k2}}, {name: plain, address: "127.0.0.1:8080"}]}`, ""},
		{"a plain listener removed", `{listeners: [{name: secure, address: "127.0.0.1:8443", tls: {cert_file: c, key_file: k}}]}`, ""},
		{"tls removed", `{listeners: [{name: secure, address: "127.0.0.1:8443"}, {name: plain, address: "127.0.0.1:8080"}]}`, "server.listeners[0]"},
		{"renamed", `{listeners: [{name: other, address: "127.0.0.1:8443", tls: {cert_file: c, key_file: k}}]}`, "server.listeners"},
		{"admin TLS on", `{listeners: [{name: secure, address: "127.0.0.1:8443", tls: {cert_file: c, key_file: k}}], admin: {tls: {cert_file: c, key_file: k}}}`, "server.admin.tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, diags := config.Parse("gatehouse.yaml", []byte("server: "+tt.yaml+"\n"))
			if diags != nil {
				t.Fatal(diags)
			}
			got := unservable(started, doc)
			if tt.want == "" {
				if got != nil {
					t.Fatalf("refused: %v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Path != tt.want {
				t.Fatalf("diagnostics %v, want one at %s", got, tt.want)
			}
		})
	}
	withAdminTLS := *started
	withAdminTLS.Admin.TLS = &config.AdminTLS{CertFile: "c", KeyFile: "k"}
	doc, _ := config.Parse("gatehouse.yaml", []byte("server: {listeners: [{name: secure, address: \"127.0.0.1:8443\", tls: {cert_file: c, key_file: k}}]}\n"))
	if got := unservable(&withAdminTLS, doc); len(got) != 1 || got[0].Path != "server.admin" {
		t.Fatalf("admin TLS off: %v, want one at server.admin", got)
	}
}

func size(n int64) config.Size { return config.Size{Bytes: n, Set: true} }
