// Package devmode runs `gatehouse dev`: a gateway on its embedded demo
// configuration, with a built-in OpenID Connect issuer and two demo
// backend instances, so that a newcomer can call it with curl within a
// minute. It is for development only: `gatehouse serve` never uses it.
package devmode

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"text/template"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/dashboard"
	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

//go:embed dev.yaml.tmpl
var configTemplate string

// Options configure the development gateway.
type Options struct {
	// Addr is the gateway's address (default 127.0.0.1:8080); IssuerAddr
	// the token issuer's (default 127.0.0.1:8081); AdminAddr the admin
	// listener's (default 127.0.0.1:9901). When a default port is taken,
	// a free one is used instead and the printed commands say which.
	Addr, IssuerAddr, AdminAddr string
	Logger                      *slog.Logger
	AccessLogger                *slog.Logger
	// Out receives the welcome text with the commands to try.
	Out io.Writer
	// Backends replaces the dashboard's backend list (tests); default the
	// configuration's static instances.
	Backends dashboard.Backends
}

// Demo clients of the built-in issuer.
var clients = []devissuer.Client{
	{ID: "reader", Secret: "reader-secret", Groups: []string{"customers"}, Scopes: []string{"orders:read"}},
	{ID: "writer", Secret: "writer-secret", Groups: []string{"staff"}, Scopes: []string{"orders:read", "orders:write"}},
	{ID: "admin", Secret: "admin-secret", Groups: []string{"admins", "staff"}, Roles: []string{"gatehouse-admin"}, Scopes: []string{"orders:read", "orders:write"}},
	dashboardClient,
}

// Env is what a running development gateway is made of; tests use it.
type Env struct {
	GatewayURL string
	IssuerURL  string
	AdminURL   string
	APIKey     string
	Issuer     *devissuer.Issuer
	Server     *server.Server
	Config     []byte
	// DashboardURL is the dashboard.
	DashboardURL string

	config  atomic.Value // []byte, for /dev/config
	closers []func()

	demoHost, demoPort string // a demo backend, for the registration example
}

// Close stops the issuer and the demo backends (not the gateway server,
// whose Serve returns when its context ends).
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// Start binds every listener and loads the demo configuration. Call
// env.Server.Serve to serve it.
func Start(ctx context.Context, o Options) (*Env, error) {
	if o.Logger == nil {
		return nil, errors.New("devmode: a logger is required")
	}
	env := &Env{}
	ok := false
	defer func() {
		if !ok {
			env.Close()
		}
	}()

	// The token issuer.
	iss, err := devissuer.New(devissuer.Options{Clients: clients, Users: dashboardUsers, Audience: "gatehouse-demo"})
	if err != nil {
		return nil, err
	}
	issLn, err := listenFallback(ctx, or(o.IssuerAddr, "127.0.0.1:8081"))
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	env.IssuerURL = "http://" + issLn.Addr().String()
	iss.SetURL(env.IssuerURL)
	env.Issuer = iss
	mux := http.NewServeMux()
	mux.Handle("/", iss.Handler())
	mux.HandleFunc("GET /dev/token/{client}", devToken(iss))
	mux.HandleFunc("GET /dev/config", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		b, _ := env.config.Load().([]byte)
		_, _ = w.Write(b)
	})
	env.serve(issLn, mux)

	// Two demo backend instances.
	var backends []string
	for _, name := range []string{"demo-a", "demo-b"} {
		ln, err := listenFallback(ctx, "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("demo backend: %w", err)
		}
		backends = append(backends, "http://"+ln.Addr().String())
		env.demoHost, env.demoPort, _ = net.SplitHostPort(ln.Addr().String())
		env.serve(ln, echoBackend(name))
	}

	// A demo API key, made fresh for this run and configured by its hash.
	key, err := identity.GenerateKey()
	if err != nil {
		return nil, err
	}
	env.APIKey = key

	// The gateway's own addresses: probe them now so that the commands we
	// print are right, then let the server bind them.
	gwAddr, err := freeAddr(ctx, or(o.Addr, "127.0.0.1:8080"))
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr(ctx, or(o.AdminAddr, "127.0.0.1:9901"))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = template.Must(template.New("dev").Parse(configTemplate)).Execute(&buf, map[string]any{
		"Addr":      gwAddr,
		"AdminAddr": adminAddr,
		"Issuer":    env.IssuerURL,
		"Backends":  backends,
		"KeyHash":   identity.HashKey(key).String(),
	})
	if err != nil {
		return nil, err
	}
	env.Config = buf.Bytes()
	env.config.Store(env.Config)
	load := func() (*config.Document, config.Diagnostics) {
		return config.Parse("(gatehouse dev)", env.Config)
	}
	// A throw-away store: registrations and keys made in the demo go
	// when it stops.
	dataDir, err := os.MkdirTemp("", "gatehouse-dev-*")
	if err != nil {
		return nil, err
	}
	env.closers = append(env.closers, func() { os.RemoveAll(dataDir) })
	srv, err := server.New(ctx, server.Options{
		Load:           load,
		Logger:         o.Logger,
		AccessLogger:   o.AccessLogger,
		StartupTimeout: 5 * time.Second,
		DataDir:        dataDir,
		Observe:        server.ObserveOptions{Backends: o.Backends},
	})
	if err != nil {
		return nil, fmt.Errorf("embedded demo configuration: %w", err)
	}
	if err := srv.Listen(ctx); err != nil {
		srv.Close()
		return nil, err
	}
	env.Server = srv
	if err := seedDashboard(ctx, srv); err != nil {
		srv.Close()
		return nil, err
	}
	env.GatewayURL = "http://" + srv.Addr("public").String()
	env.AdminURL = "http://" + srv.AdminAddr().String()
	env.DashboardURL = env.AdminURL + "/ui/"
	if o.Out != nil {
		env.welcome(o.Out)
	}
	ok = true
	return env, nil
}

func (e *Env) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	e.closers = append(e.closers, func() { _ = srv.Close() })
}

// listenFallback listens on addr, or on a free port of the same host when
// addr's port is taken.
func listenFallback(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, err
	}
	host, _, _ := net.SplitHostPort(addr)
	return lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
}

// freeAddr returns addr if it can be bound now, else a free port on the
// same host.
func freeAddr(ctx context.Context, addr string) (string, error) {
	ln, err := listenFallback(ctx, addr)
	if err != nil {
		return "", err
	}
	a := ln.Addr().String()
	ln.Close()
	return a, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// devToken mints a client_credentials token for a demo client without the
// OAuth dance, so the welcome commands stay short.
func devToken(iss *devissuer.Issuer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("client")
		for _, c := range clients {
			if c.ID != id {
				continue
			}
			tok, err := iss.Mint(map[string]any{
				"sub": c.ID, "client_id": c.ID, "aud": "gatehouse-demo",
				"groups": c.Groups, "roles": c.Roles, "scope": strings.Join(c.Scopes, " "),
			})
			if err != nil {
				http.Error(w, "minting failed", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintln(w, tok)
			return
		}
		http.Error(w, "unknown demo client; try reader, writer or admin", http.StatusNotFound)
	}
}

// echoBackend answers with what it received, so a newcomer can see what
// the gateway forwards: the path, the request ID, the identity headers.
func echoBackend(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers := map[string]string{}
		var names []string
		for k := range r.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			headers[k] = strings.Join(r.Header.Values(k), ", ")
		}
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{
			"backend":    name,
			"method":     r.Method,
			"path":       r.URL.Path,
			"query":      r.URL.RawQuery,
			"body_bytes": n,
			"headers":    headers,
		})
	})
}

func (e *Env) welcome(w io.Writer) {
	gw := e.GatewayURL
	fmt.Fprintf(w, `
  ============================================================
   Gatehouse DEVELOPMENT MODE — demo issuer, demo backends,
   a throw-away API key. Never use this for production:
   run 'gatehouse serve --config FILE' there.
  ============================================================

  gateway   %s
  issuer    %s   (OIDC discovery: /.well-known/openid-configuration)
  admin     %s/metrics  /readyz  /v1/openapi.json  /v1/stats

  dashboard %s
            sign in as "Alice Admin" (admin) or "Bob Viewer" (viewer) on the
            development issuer's page; no password.

  Try it (copy and paste):

  # 200: a token for the demo client "reader" (scope orders:read)
  TOKEN=$(curl -s %s/dev/token/reader)
  curl -s -H "Authorization: Bearer $TOKEN" %s/orders/42

  # the same token through the standard OAuth2 client_credentials grant
  curl -s -u reader:reader-secret -d grant_type=client_credentials %s/token

  # 200: the demo API key of consumer "demo-partner"
  curl -s -H "X-API-Key: %s" %s/orders/42

  # 401: no credentials
  curl -i %s/orders/42

  # 403: "reader" lacks the orders:write scope that POST needs
  curl -i -X POST -H "Authorization: Bearer $TOKEN" %s/orders

  # 200 with no credentials: an explicitly anonymous route
  curl -s %s/public/status

  # service registration: register a demo backend into "demo-registered",
  # then call it through /registered (dev admin API: no credentials on loopback)
  curl -s -X POST -H 'Content-Type: application/json' -d '{"address":"%s","port":%s,"ttl":"5m"}' %s/v1/services/demo-registered/instances
  curl -s %s/registered/hello

  # a consumer with an API key kept in the store (shown once)
  curl -s -X POST -H 'Content-Type: application/json' -d '{"name":"acme","scopes":["orders:read"]}' %s/v1/consumers

  # anomalies: ten 401s in a minute from this address throttle it for a
  # minute (ten 401s, five more requests the throttle lets through, then
  # 429); see it on the dashboard's Anomalies page or in the admin API
  for i in $(seq 20); do curl -s -o /dev/null -w '%%{http_code} ' %s/orders/42; done; echo
  curl -s %s/v1/anomalies

  # suggested timeouts and limits, from the latency the gateway observed
  # (a real gateway waits for 500 exchanges per operation; here 20)
  for i in $(seq 30); do curl -s -o /dev/null %s/public/status; done
  curl -s '%s/v1/suggestions?min_samples=20'
  # or: go run ./cmd/gatehouse suggest --admin-url %s --min-samples 20

  Other demo clients: writer/writer-secret (orders:write), admin/admin-secret (group admins).
  The configuration being served:  curl -s %s/dev/config  (or see internal/devmode/dev.yaml.tmpl)

`, gw, e.IssuerURL, e.AdminURL, e.DashboardURL, e.IssuerURL, gw, e.IssuerURL, e.APIKey, gw, gw, gw, gw,
		e.demoHost, e.demoPort, e.AdminURL, gw, e.AdminURL, gw, e.AdminURL, gw, e.AdminURL, e.AdminURL, e.IssuerURL)
}
