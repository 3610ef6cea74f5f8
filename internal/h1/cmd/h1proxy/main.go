// Command h1proxy measures what package h1 saves on a proxied request. In
// one run it starts the repository's benchmark backend, nginx as a plain
// reverse proxy, and a minimal Go proxy in several configurations, and
// drives each with wrk under the same CPU pinning as `go run ./bench`:
// backend and proxy on CPU 0 (Go programs with GOMAXPROCS=1, nginx with
// one worker), wrk -t1 on CPU 1. For every scenario it reports requests/s
// and the proxy's CPU time per request (utime+stime from /proc/PID/stat),
// as medians over interleaved rounds.
//
//	go run ./internal/h1/cmd/h1proxy                       # 3 rounds of 10 s
//	go run ./internal/h1/cmd/h1proxy -rounds 5 -profile /tmp/prof
//
// The configurations (modes) are:
//
//	nethttp      http.Server + httputil.ReverseProxy + http.Transport
//	h1-rp        h1.Server + httputil.ReverseProxy + h1.Transport
//	h1-direct    h1.Server + a direct handler calling h1.Transport
//	nethttp-h1t  http.Server + httputil.ReverseProxy + h1.Transport
//	h1-httpt     h1.Server + httputil.ReverseProxy + http.Transport
//	pump         a TCP byte pump (io.Copy both ways, one upstream
//	             connection per client connection): the floor for Go
//
// "h1proxy serve" runs one of them; the driver starts it pinned.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serveMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "h1proxy serve:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every scenario once, interleaved")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "duration of each measurement")
	flag.IntVar(&o.conns, "c", 64, "wrk connections")
	flag.StringVar(&o.modes, "modes", "nethttp,h1-rp,h1-direct", "Go proxy configurations to measure (also: nethttp-h1t, h1-httpt, pump)")
	flag.StringVar(&o.nginx, "nginx", "auto", "auto, off, or the path of nginx")
	flag.StringVar(&o.profile, "profile", "", "directory for CPU profiles of the Go proxies (whole run)")
	flag.StringVar(&o.gogc, "gogc", "", "GOGC for the Go proxies only (the backend keeps the default)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "h1proxy:", err)
		os.Exit(1)
	}
}

type options struct {
	rounds   int
	duration time.Duration
	conns    int
	modes    string
	nginx    string
	profile  string
	gogc     string
}

// target is one thing measured: a URL and the process whose CPU is
// counted (0 for none).
type target struct {
	name string
	url  string
	pid  int
}

type sample struct {
	rps    float64
	cpuUS  float64 // proxy CPU µs per request
	backUS float64 // backend CPU µs per request
	errs   int
}

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return errors.New("wrk is required")
	}
	if runtime.NumCPU() < 2 {
		return errors.New("two CPUs are required for the pinning")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return errors.New("taskset is required")
	}
	tmp, err := os.MkdirTemp("", "h1proxy")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	be := filepath.Join(tmp, "backend")
	if out, err := exec.Command("go", "build", "-o", be, "./bench/backend").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./bench/backend (run from the repository root): %v\n%s", err, out)
	}
	var procs processes
	defer procs.stopAll()
	pin0 := func(args ...string) []string { return append([]string{"taskset", "-c", "0"}, args...) }

	backendAddr := freeAddr()
	backend, err := procs.start("backend", pin0(be, "-addr", backendAddr), []string{"GOMAXPROCS=1", "GOGC=100"})
	if err != nil {
		return err
	}
	targets := []target{{name: "direct", url: "http://" + backendAddr + "/bench/x"}}
	nginxVersion := "not installed"
	if path := nginxPath(o.nginx); path != "" {
		addr := freeAddr()
		conf := filepath.Join(tmp, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConfig(tmp, addr, backendAddr)), 0o644); err != nil {
			return err
		}
		p, err := procs.start("nginx", pin0(path, "-c", conf, "-p", tmp), nil)
		if err != nil {
			return err
		}
		out, _ := exec.Command(path, "-v").CombinedOutput()
		nginxVersion = strings.TrimSpace(string(out))
		targets = append(targets, target{name: "nginx", url: "http://" + addr + "/bench/x", pid: p})
	}
	for _, m := range strings.Split(o.modes, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		addr := freeAddr()
		args := []string{self, "serve", "-mode", m, "-addr", addr, "-backend", backendAddr}
		if o.profile != "" {
			if err := os.MkdirAll(o.profile, 0o755); err != nil {
				return err
			}
			args = append(args, "-cpuprofile", filepath.Join(o.profile, m+".pprof"))
		}
		env := []string{"GOMAXPROCS=1"}
		if o.gogc != "" {
			env = append(env, "GOGC="+o.gogc)
		}
		p, err := procs.start(m, pin0(args...), env)
		if err != nil {
			return err
		}
		targets = append(targets, target{name: m, url: "http://" + addr + "/bench/x", pid: p})
	}
	for _, t := range targets {
		if err := waitOK(ctx, t.url); err != nil {
			return fmt.Errorf("%s: %w\n%s", t.name, err, procs.stderr(t.name))
		}
	}
	fmt.Fprintf(os.Stderr, "h1proxy: %d rounds × %d scenarios × %s, wrk -t1 -c%d on CPU 1; backend and proxy on CPU 0\n",
		o.rounds, len(targets), o.duration, o.conns)
	results := map[string][]sample{}
	for round := 1; round <= o.rounds; round++ {
		for _, t := range targets {
			s, err := measure(ctx, wrk, t, backend, o)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			results[t.name] = append(results[t.name], s)
			fmt.Fprintf(os.Stderr, "h1proxy: round %d %-12s %8.0f req/s  proxy %6.1f µs/req  backend %5.1f µs/req  errors %d\n",
				round, t.name, s.rps, s.cpuUS, s.backUS, s.errs)
		}
	}
	report(targets, results, o, nginxVersion)
	return nil
}

func nginxPath(flagValue string) string {
	switch flagValue {
	case "off":
		return ""
	case "auto":
		p, _ := exec.LookPath("nginx")
		if p == "" {
			if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
				p = "/usr/sbin/nginx"
			}
		}
		return p
	}
	return flagValue
}

var (
	wrkRPS  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkReqs = regexp.MustCompile(`(\d+) requests in`)
	wrkErrs = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// measure runs wrk once against t and reads the CPU the proxy and the
// backend used meanwhile.
func measure(ctx context.Context, wrk string, t target, backend int, o options) (sample, error) {
	p0, b0 := cpuTicks(t.pid), cpuTicks(backend)
	args := []string{"taskset", "-c", "1", wrk, "-t1", "-c" + strconv.Itoa(o.conns), "-d" + strconv.Itoa(int(o.duration.Seconds())) + "s", t.url}
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	p1, b1 := cpuTicks(t.pid), cpuTicks(backend)
	var s sample
	m := wrkRPS.FindStringSubmatch(string(out))
	n := wrkReqs.FindStringSubmatch(string(out))
	if m == nil || n == nil {
		return s, fmt.Errorf("unexpected wrk output:\n%s", out)
	}
	s.rps, _ = strconv.ParseFloat(m[1], 64)
	reqs, _ := strconv.ParseFloat(n[1], 64)
	for _, e := range wrkErrs.FindAllStringSubmatch(string(out), -1) {
		for _, v := range e[1:] {
			if x, err := strconv.Atoi(v); err == nil {
				s.errs += x
			}
		}
	}
	if reqs > 0 {
		tick := 1e6 / float64(clockTicks())
		if t.pid != 0 {
			s.cpuUS = float64(p1-p0) * tick / reqs
		}
		s.backUS = float64(b1-b0) * tick / reqs
	}
	return s, nil
}

// cpuTicks returns utime+stime of pid and of its children (nginx's
// worker), in clock ticks.
func cpuTicks(pid int) int64 {
	if pid == 0 {
		return 0
	}
	total := int64(0)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+2:])
			// fields after the command: state is f[0]; utime and stime
			// are fields 14 and 15 of the whole line, f[11] and f[12].
			if len(f) > 12 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				total += u + st
			}
		}
	}
	if kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, k := range strings.Fields(string(kids)) {
			if c, err := strconv.Atoi(k); err == nil {
				total += cpuTicks(c)
			}
		}
	}
	return total
}

func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}

func median(v []float64) float64 {
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

func report(targets []target, results map[string][]sample, o options, nginxVersion string) {
	med := func(name string, get func(sample) float64) float64 {
		var v []float64
		for _, s := range results[name] {
			v = append(v, get(s))
		}
		return median(v)
	}
	rps := func(n string) float64 { return med(n, func(s sample) float64 { return s.rps }) }
	ng := rps("nginx")
	direct := rps("direct")
	gogc := "default"
	if o.gogc != "" {
		gogc = o.gogc
	}
	fmt.Printf("\nh1proxy, %s — %d CPUs (%s), %s, %s, %d rounds × %s, wrk -t1 -c%d, GOGC of the Go proxies %s\n\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), cpuModel(), runtime.Version(), nginxVersion, o.rounds, o.duration, o.conns, gogc)
	fmt.Println("| scenario | req/s | vs nginx | vs direct | proxy CPU µs/req | backend CPU µs/req | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, t := range targets {
		r := rps(t.name)
		errs := 0
		for _, s := range results[t.name] {
			errs += s.errs
		}
		cpu := "—"
		if t.pid != 0 {
			cpu = fmt.Sprintf("%.1f", med(t.name, func(s sample) float64 { return s.cpuUS }))
		}
		vsNginx := "—"
		if ng > 0 {
			vsNginx = fmt.Sprintf("%.2f", r/ng)
		}
		fmt.Printf("| %s | %.0f | %s | %.2f | %s | %.1f | %d |\n", t.name, r, vsNginx, r/direct, cpu,
			med(t.name, func(s sample) float64 { return s.backUS }), errs)
	}
}

func cpuModel() string {
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

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitOK(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	for range 200 {
		res, err := client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("not ready after 10s: " + url)
}

// processes are the programs the driver started; each is stopped by its
// PID at the end.
type processes struct{ list []*proc }

type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr strings.Builder
}

func (p *processes) start(name string, argv, env []string) (int, error) {
	pr := &proc{name: name}
	pr.cmd = exec.Command(argv[0], argv[1:]...)
	pr.cmd.Env = append(os.Environ(), env...)
	pr.cmd.Stderr = &pr.stderr
	if err := pr.cmd.Start(); err != nil {
		return 0, err
	}
	p.list = append(p.list, pr)
	// taskset execs the program, so the PID is the program's.
	return pr.cmd.Process.Pid, nil
}

func (p *processes) stderr(name string) string {
	for _, pr := range p.list {
		if pr.name == name {
			return pr.stderr.String()
		}
	}
	return ""
}

func (p *processes) stopAll() {
	for i := len(p.list) - 1; i >= 0; i-- {
		pr := p.list[i]
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
	p.list = nil
}

func nginxConfig(dir, addr, backend string) string {
	return fmt.Sprintf(`# written by h1proxy: nginx as a plain reverse proxy, as in go run ./bench
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
  upstream be { server %[3]s; keepalive 256; }
  server {
    listen %[2]s;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, addr, backend)
}
