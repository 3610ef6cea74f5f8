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
//	             with its netpoller
//	epoll-pump   the same pump on one thread waiting in epoll_wait,
//	             nginx's I/O model: no goroutine parked or woken per
//	             read (Linux only, not 386)
//	raw-pump     a pump with Gatehouse's I/O pattern: one goroutine per
//	             client connection in lockstep, raw system calls as h1
//	             makes them, a park per reply awaited (Linux only, not 386)
//
// "h1proxy serve" runs one of them; the driver starts it pinned.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/bench/harness"
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
	flag.StringVar(&o.modes, "modes", "nethttp,h1-rp,h1-direct", "Go proxy configurations to measure (also: nethttp-h1t, h1-httpt, pump, raw-pump, epoll-pump)")
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
	var procs harness.Processes
	defer procs.StopAll()
	pin0 := func(args ...string) []string { return append([]string{"taskset", "-c", "0"}, args...) }

	backendAddr := mustFreeAddr()
	backend, err := procs.Start("backend", pin0(be, "-addr", backendAddr), []string{"GOMAXPROCS=1", "GOGC=100"}, "", nil)
	if err != nil {
		return err
	}
	targets := []target{{name: "direct", url: "http://" + backendAddr + "/bench/x"}}
	nginxVersion := "not installed"
	if path := harness.ToolPath(o.nginx, "nginx"); path != "" {
		addr := mustFreeAddr()
		conf := filepath.Join(tmp, "nginx.conf")
		if err := os.WriteFile(conf, []byte(harness.NginxConfig(tmp, addr, backendAddr)), 0o644); err != nil {
			return err
		}
		p, err := procs.Start("nginx", pin0(path, "-c", conf, "-p", tmp), nil, "", nil)
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
		addr := mustFreeAddr()
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
		p, err := procs.Start(m, pin0(args...), env, "", nil)
		if err != nil {
			return err
		}
		targets = append(targets, target{name: m, url: "http://" + addr + "/bench/x", pid: p})
	}
	for _, t := range targets {
		if err := harness.WaitHTTP(ctx, t.url); err != nil {
			return fmt.Errorf("%s: %w\n%s", t.name, err, procs.Stderr(t.name))
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

var (
	wrkRPS  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkReqs = regexp.MustCompile(`(\d+) requests in`)
	wrkErrs = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// measure runs wrk once against t and reads the CPU the proxy and the
// backend used meanwhile.
func measure(ctx context.Context, wrk string, t target, backend int, o options) (sample, error) {
	p0, b0 := harness.CPU(t.pid), harness.CPU(backend)
	args := []string{"taskset", "-c", "1", wrk, "-t1", "-c" + strconv.Itoa(o.conns), "-d" + strconv.Itoa(int(o.duration.Seconds())) + "s", t.url}
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	p1, b1 := harness.CPU(t.pid), harness.CPU(backend)
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
		if t.pid != 0 {
			s.cpuUS = float64((p1 - p0).Microseconds()) / reqs
		}
		s.backUS = float64((b1 - b0).Microseconds()) / reqs
	}
	return s, nil
}

func report(targets []target, results map[string][]sample, o options, nginxVersion string) {
	med := func(name string, get func(sample) float64) float64 {
		var v []float64
		for _, s := range results[name] {
			v = append(v, get(s))
		}
		return harness.Median(v)
	}
	rps := func(n string) float64 { return med(n, func(s sample) float64 { return s.rps }) }
	ng := rps("nginx")
	direct := rps("direct")
	gogc := "default"
	if o.gogc != "" {
		gogc = o.gogc
	}
	fmt.Printf("\nh1proxy, %s — %d CPUs (%s), %s, %s, %d rounds × %s, wrk -t1 -c%d, GOGC of the Go proxies %s\n\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), harness.CPUModel(), runtime.Version(), nginxVersion, o.rounds, o.duration, o.conns, gogc)
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

func mustFreeAddr() string {
	a, err := harness.FreeAddr()
	if err != nil {
		panic(err)
	}
	return a
}
