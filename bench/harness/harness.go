// Package harness holds what the repository's load measurements share:
// starting and stopping the processes under test, reading the CPU time
// they use, the configurations of the reference proxies (nginx, HAProxy,
// Caddy, oauth2-proxy), and small helpers. It is used by `go run ./bench`
// and by internal/h1's h1proxy.
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Processes are the programs a measurement started; StopAll stops every
// one by its PID.
type Processes struct {
	mu    sync.Mutex
	procs []*proc
}

type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

// Start runs argv with env added to the environment, in dir ("" for the
// current one), its standard output to stdout (nil discards it), and
// returns its PID.
func (p *Processes) Start(name string, argv, env []string, dir string, stdout io.Writer) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	if stdout == nil {
		stdout = io.Discard
	}
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	p.mu.Lock()
	p.procs = append(p.procs, &proc{name: name, cmd: cmd, stderr: &stderr})
	p.mu.Unlock()
	return cmd.Process.Pid, nil
}

// PID returns the PID of the named process, or 0.
func (p *Processes) PID(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.procs {
		if pr.name == name {
			return pr.cmd.Process.Pid
		}
	}
	return 0
}

// Stderr returns what the named process wrote to its standard error.
func (p *Processes) Stderr(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.procs {
		if pr.name == name {
			return pr.stderr.String()
		}
	}
	return ""
}

// StopAll sends SIGTERM to each process, latest first, waits up to 5 s,
// then kills it.
func (p *Processes) StopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.procs) - 1; i >= 0; i-- {
		pr := p.procs[i]
		_ = pr.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = pr.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = pr.cmd.Process.Kill()
			<-done
		}
	}
	p.procs = nil
}

// clockTick is the unit of /proc/PID/stat's utime and stime (1/CLK_TCK).
var clockTick = sync.OnceValue(func() time.Duration {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return time.Second / time.Duration(v)
		}
	}
	return 10 * time.Millisecond
})

// CPU returns the CPU time (user + system) that pid and its children
// (nginx's worker) have used, or -1 when it cannot be read.
func CPU(pid int) time.Duration {
	user, sys := CPUTimes(pid)
	if user < 0 {
		return -1
	}
	return user + sys
}

// CPUTimes returns the CPU time that pid and its children have used in
// user space and in the kernel, or -1, -1 when it cannot be read. The
// kernel's part of a proxied request includes the loopback delivery of
// what it writes (the receiver's TCP work runs in the writer's system
// call).
func CPUTimes(pid int) (user, sys time.Duration) {
	if pid <= 0 {
		return -1, -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1, -1
	}
	// The fields after the command name, which is in parentheses: utime
	// and stime are the 14th and 15th of the line.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return -1, -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	user, sys = time.Duration(ut)*clockTick(), time.Duration(st)*clockTick()
	if kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, k := range strings.Fields(string(kids)) {
			if c, err := strconv.Atoi(k); err == nil {
				if u, s := CPUTimes(c); u >= 0 {
					user, sys = user+u, sys+s
				}
			}
		}
	}
	return user, sys
}

// ToolPath resolves a flag naming a program (nginx, haproxy, caddy,
// oauth2-proxy): "off" (none), "auto" (name on the PATH, in /usr/sbin or
// where `go install` puts programs, else none), or a path.
func ToolPath(flag, name string) string {
	switch flag {
	case "off":
		return ""
	case "auto":
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range append([]string{"/usr/sbin"}, goBin()...) {
			if p := filepath.Join(dir, name); fileExists(p) {
				return p
			}
		}
		return ""
	}
	return flag
}

// goBin returns the directories where `go install` puts programs: GOBIN,
// or the bin directory of GOPATH's first entry.
var goBin = sync.OnceValue(func() []string {
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return nil
	}
	gobin, gopath, _ := strings.Cut(string(out), "\n") // one line each, GOBIN's maybe empty
	if gobin = strings.TrimSpace(gobin); gobin != "" {
		return []string{gobin}
	}
	if list := filepath.SplitList(strings.TrimSpace(gopath)); len(list) > 0 && list[0] != "" {
		return []string{filepath.Join(list[0], "bin")}
	}
	return nil
})

// Version returns the first line that the program at path prints when run
// with args ("-v", "version", "--version"). A Go program built by `go
// install` may print "undefined" or "unknown" for its version
// (oauth2-proxy, Caddy): the version of its main module, from its build
// information, replaces it.
func Version(path string, args ...string) string {
	out, _ := exec.Command(path, args...).CombinedOutput()
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(v)
	for i, w := range f {
		if w != "undefined" && w != "unknown" {
			continue
		}
		if bi, err := buildinfo.ReadFile(path); err == nil && bi.Main.Version != "" {
			f[i] = bi.Main.Version
			return strings.Join(f, " ")
		}
	}
	return v
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// GatehouseRoutes is the part of Gatehouse's configuration that the
// benchmark measures: an identity provider (issuer, audience "bench",
// RS256), one backend, an anonymous passthrough API under /pass and the
// full identity chain under /full (a JWT with scope bench:read and group
// benchers, a rate limit per subject high enough never to refuse).
// internal/gateway's allocation test uses the same routes.
func GatehouseRoutes(issuer, backend string) string {
	return fmt.Sprintf(`identity_providers:
  - name: bench
    issuer: %q
    audiences: [bench]
    algorithms: [RS256]
backends:
  - name: be
    instances: [{url: "http://%s"}]
apis:
  - name: passthrough
    path_prefix: /pass
    backend: be
    auth: {anonymous: true}
  - name: full
    path_prefix: /full
    backend: be
    rate_limits:   # per subject; high enough never to refuse the benchmark
      - {name: per-client, rate: 10000000, period: 1s, burst: 10000000}
    auth:
      credentials: [jwt]
      require:
        scopes: {all_of: ["bench:read"]}
        groups: {any_of: [benchers]}
`, issuer, backend)
}

// NginxConfig is nginx as a plain reverse proxy on addr in front of
// backend, with one worker, keep-alive upstream connections, no access
// log, and its files in dir.
func NginxConfig(dir, addr, backend string) string {
	return nginxConfig("as a plain reverse proxy", dir, addr, backend, "", "")
}

// NginxForwardingConfig is NginxConfig doing the forwarding work that
// Gatehouse does on every request (issue 2): it sets X-Forwarded-For,
// X-Forwarded-Host, X-Forwarded-Proto, a new X-Request-Id (returned to
// the client too) and a traceparent made of it, so that the backend
// parses the same fields. It is not the target's reference (that is
// plain nginx); it shows how much of the difference is that work. Its
// files go to dir, which must not be another nginx's.
func NginxForwardingConfig(dir, addr, backend string) string {
	return nginxConfig("as a reverse proxy setting Gatehouse's forwarded fields", dir, addr, backend, `
  # a span ID: the first 16 hex digits of the request ID
  map $request_id $span_id { "~^(?<s>.{16})" $s; }`, `
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header Traceparent "00-$request_id-$span_id-01";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      add_header X-Request-Id $request_id always;`)
}

// nginxConfig is the configuration both nginx scenarios share, with
// httpExtra added to its http block and locationExtra to its location.
func nginxConfig(what, dir, addr, backend, httpExtra, locationExtra string) string {
	return fmt.Sprintf(`# nginx %[4]s (bench/harness)
worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream be { server %[3]s; keepalive 256; }%[5]s
  server {
    listen %[2]s;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";%[6]s
    }
  }
}
`, dir, addr, backend, what, httpExtra, locationExtra)
}

// HAProxyConfig is HAProxy as a plain reverse proxy on addr in front of
// backend, with one thread, its default keep-alive and connection reuse
// on both sides, and no log.
func HAProxyConfig(dir, addr, backend string) string {
	return fmt.Sprintf(`# HAProxy as a plain reverse proxy (bench/harness)
global
  nbthread 1
  maxconn 8192
  pidfile %[1]s/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 120s
frontend fe
  bind %[2]s
  default_backend be
backend be
  server s1 %[3]s
`, dir, addr, backend)
}

// CaddyConfig is Caddy's JSON configuration as a plain reverse proxy on
// addr in front of backend: HTTP only (no automatic HTTPS, no redirects),
// no admin endpoint, no access log (Caddy logs requests only when a
// server asks for it), nothing saved to disk, and keep-alive upstream
// connections. It suits Caddy 2.6 and later.
func CaddyConfig(addr, backend string) string {
	return fmt.Sprintf(`{
  "admin": {"disabled": true, "config": {"persist": false}},
  "apps": {"http": {"servers": {"bench": {
    "listen": [%q],
    "automatic_https": {"disable": true},
    "routes": [{"handle": [{
      "handler": "reverse_proxy",
      "transport": {"protocol": "http", "keep_alive": {"enabled": true, "max_idle_conns_per_host": 256}},
      "upstreams": [{"dial": %q}]
    }]}]
  }}}}
}
`, addr, backend)
}

// OAuth2ProxyConfig is oauth2-proxy's configuration file as a proxy on
// addr in front of backend that lets through requests with a JWT bearer
// token from issuer (OpenID discovery, JWKS) for audience, and refuses
// others with 401; no logging. It holds a cookie secret and a client
// secret that oauth2-proxy requires but that are not used here: random
// ones, new at each call; keep the file private.
func OAuth2ProxyConfig(addr, backend, issuer, audience string) string {
	cookieSecret := make([]byte, 32)
	rand.Read(cookieSecret) // never fails (crypto/rand)
	return fmt.Sprintf(`# oauth2-proxy validating JWT bearer tokens (bench/harness)
http_address = %q
upstreams = ["http://%s/"]
provider = "oidc"
oidc_issuer_url = %q
client_id = %q
client_secret = %q
cookie_secret = %q
cookie_secure = false
email_domains = ["*"]
skip_jwt_bearer_tokens = true
api_routes = ["^/"]
request_logging = false
auth_logging = false
standard_logging = false
`, addr, backend, issuer, audience, rand.Text(), base64.URLEncoding.EncodeToString(cookieSecret))
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// WaitHTTP waits for url to answer 200: until ctx's deadline when it has
// one (a program under callgrind starts tens of times slower), else up
// to 20 s.
func WaitHTTP(ctx context.Context, url string) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(20 * time.Second)
	}
	for time.Now().Before(deadline) {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("not ready in time: " + url)
}

// CPUModel returns the machine's CPU model name.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// Median returns the median of v (0 when empty), leaving v as it is.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
