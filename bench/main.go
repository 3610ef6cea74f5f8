// Command bench compares Gatehouse with a direct call to the backend, with
// nginx, HAProxy and Caddy as plain reverse proxies and with oauth2-proxy
// validating the same JWT as Gatehouse's full chain (each when installed),
// in one run on one machine, with the same load and the same CPU pinning
// for each. A second nginx (nginx-forwarding) sets the fields Gatehouse
// forwards (X-Forwarded-*, a request ID, a traceparent): not the target's
// reference, but a measure of how much of the difference is that work.
//
//	go run ./bench                      # 9 rounds of 5 s (+3 s at one connection), writes bench/results/latest.json
//	go run ./bench -rounds 3 -nginx off -caddy ~/go/bin/caddy
//	go run ./bench -instructions 2000 -baseline OLD   # instructions per request under callgrind: steady on a noisy machine
//	go run ./bench -instructions 20000 -browser-fields  # also a browser's request fields and an API response's, and each field's cost
//	go run ./bench -instructions 20000 -wrk-request     # the requests as wrk sends them in the load runs (Host alone)
//
// The backend and the proxy under test share CPU 0 (Go programs, Caddy and
// oauth2-proxy included, with GOMAXPROCS=1, nginx with one worker, HAProxy
// with one thread); the load generator runs on CPU 1:
// wrk when installed, otherwise a built-in Go load generator. Scenarios
// are interleaved within each round so that noise from a shared machine
// spreads over all of them: nginx next to Gatehouse, and every other
// round in the reverse order. The report gives medians and ratios.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/bench/harness"
	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
)

type options struct {
	rounds      int
	duration    time.Duration
	oneDuration time.Duration
	interleave  time.Duration // the interleaved one-connection measurement's length (0: none)
	conns       int
	nginx       string
	haproxy     string
	caddy       string
	oauth2Proxy string
	loadgen     string
	out         string
	only        string
	profile     string
	baseline    string
	browser     bool // -instructions: also count passthrough requests with a browser's request fields, and with an API response's fields
	wrkRequest  bool // -instructions: send the requests as wrk does (Host alone), not as Go's client does
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "loadgen" {
		os.Exit(loadgenMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "interleave" {
		os.Exit(interleaveMain(os.Args[2:]))
	}
	var o options
	flag.IntVar(&o.rounds, "rounds", 9, "rounds; each round runs every scenario once")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "duration of each high-load measurement")
	flag.DurationVar(&o.oneDuration, "one-duration", 3*time.Second, "duration of each one-connection measurement")
	flag.DurationVar(&o.interleave, "interleave", 10*time.Second, "after the rounds: measure every scenario at one connection for this long, one request at a time, the scenarios taken in turn, and report each one's p50 and the median of the per-cycle differences between them, which a noisy machine disturbs less than the per-round runs (0: not)")
	flag.IntVar(&o.conns, "c", 64, "connections at high load")
	flag.StringVar(&o.nginx, "nginx", "auto", "auto (use nginx when installed), off, or a path to nginx")
	flag.StringVar(&o.haproxy, "haproxy", "auto", "auto (use HAProxy when installed), off, or a path to haproxy")
	flag.StringVar(&o.caddy, "caddy", "auto", "auto (use Caddy when installed), off, or a path to caddy")
	flag.StringVar(&o.oauth2Proxy, "oauth2-proxy", "auto", "auto (use oauth2-proxy when on the PATH or in $(go env GOPATH)/bin), off, or a path to oauth2-proxy")
	flag.StringVar(&o.loadgen, "loadgen", "auto", "auto (wrk when installed), wrk, or go")
	flag.StringVar(&o.out, "out", "bench/results/latest.json", "where to write the JSON result")
	flag.StringVar(&o.only, "only", "", "comma-separated scenarios to run (direct,nginx,nginx-forwarding,haproxy,caddy,oauth2-proxy-jwt,gatehouse-passthrough,gatehouse-full-chain, and with -baseline baseline-passthrough,baseline-full-chain)")
	flag.StringVar(&o.baseline, "baseline", "", "a second gatehouse binary (say, built from an older commit) measured in the same rounds: baseline-passthrough, baseline-full-chain")
	flag.StringVar(&o.profile, "profile", "", "a directory: write CPU and allocation profiles of Gatehouse under each of its scenarios' first high-load run; with -instructions, each target's callgrind dump of the counted requests (go run ./bench/cgtop reads them)")
	instructions := flag.Int("instructions", 0, "instead of the load runs: count the instructions per request in user space of Gatehouse (and -baseline, nginx, nginx-forwarding) under valgrind's callgrind over this many requests, which a noisy machine does not disturb (2000 for a quick comparison; 20000 so that garbage-collection cycles, about one per 11000 requests, are counted at their rate under load)")
	instrRuns := flag.Int("instruction-runs", 2, "with -instructions: runs of each target, interleaved")
	flag.BoolVar(&o.browser, "browser-fields", false, "with -instructions: also count passthrough requests that carry the ten request fields a browser's fetch sends (User-Agent, Accept, Cookie, …), and the same answered with an API response's eight fields more (Cache-Control, ETag, Vary, …), for Gatehouse (and -baseline) and nginx, and each one's cost per request field and per response field")
	flag.BoolVar(&o.wrkRequest, "wrk-request", false, "with -instructions: send the requests as wrk sends them in the load runs (Host and nothing else; the browser's fields, with -browser-fields), not with the two fields Go's client adds (User-Agent, Accept-Encoding)")
	pgo := flag.String("pgo", "", "instead of the measurements: run Gatehouse's passthrough and full-chain scenarios under load once each (-duration each; 20s or more gives a steady profile) with CPU profiles, and write their merge to this file (cmd/gatehouse/default.pgo: the profile go build uses)")
	report := flag.String("report", "", "a JSON result of an earlier run: compute its ratios and targets again with this version, print them, and write them to -out if given (nothing is measured)")
	flag.Parse()
	var err error
	if *instructions > 0 {
		out := ""
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "out" {
				out = o.out
			}
		})
		o.out = out
		err = runInstructions(o, *instructions, max(*instrRuns, 1))
	} else if *pgo != "" {
		err = runPGO(o, *pgo)
	} else if *report != "" {
		out := "" // only where asked: not over latest.json by default
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "out" {
				out = o.out
			}
		})
		err = rereport(*report, out)
	} else {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// scenario is one thing measured: a URL and the headers to send.
type scenario struct {
	Name    string            `json:"name"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"-"`
	// proc is the process whose CPU time is the cost of the scenario: the
	// proxy (or the backend, for direct).
	proc string
	// open: Headers hold no credential, so the scenario is not checked to
	// refuse a request without them.
	open bool
}

// reference is a reference proxy, measured as a scenario of its own.
type reference struct {
	scenario string // the scenario's name (default the tool's)
	tool     string // the program's name, and its version's in the report
	flag     string // where to find it (harness.ToolPath)
	env      []string
	file     string // its configuration file, in the temporary directory
	// config returns its configuration, to be written to file, and its
	// arguments, for it to listen on addr.
	config  func(addr, file string) (conf string, args []string)
	version []string          // the arguments that make it print its version
	ready   string            // a path that answers 200 once it is up (default the scenario's)
	headers map[string]string // what the scenario sends
}

// sample is one measurement.
type sample struct {
	RPS   float64 `json:"rps"`
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	Errs  int     `json:"errors"`
	// CPUus is the CPU time (user + system) the scenario's process spent
	// per request: a cost that a noisy, shared machine disturbs less than
	// requests per second.
	CPUus float64 `json:"cpu_us_per_request"`
	// SysUs is the kernel's part of CPUus (since the sixth session).
	SysUs float64 `json:"sys_us_per_request,omitempty"`
	// BackendUs is the CPU time the backend spent per request over the
	// same measurement (since 2026-11-27, 21:00 UTC). It shares a core
	// with the proxy, so requests/s is about one over CPUus + BackendUs,
	// and a proxy that sends the backend more fields to parse costs it
	// more (for direct it is CPUus).
	BackendUs float64 `json:"backend_cpu_us_per_request,omitempty"`
}

type result struct {
	Scenario string   `json:"scenario"`
	High     []sample `json:"high_load"`
	One      []sample `json:"one_connection"`
	HighMed  sample   `json:"high_load_median"`
	OneMed   sample   `json:"one_connection_median"`
}

type report struct {
	Date    string            `json:"date"`
	Machine map[string]string `json:"machine"`
	Options map[string]any    `json:"options"`
	Results []*result         `json:"results"`
	// Interleaved is the interleaved one-connection measurement
	// (interleave.go), since the seventh session of 2026-11-27.
	Interleaved *interleaved       `json:"one_connection_interleaved,omitempty"`
	Ratios      map[string]float64 `json:"ratios"`
	Targets     map[string]string  `json:"targets"`
}

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tmp, err := os.MkdirTemp("", "gatehouse-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pin := func(cpu string, args ...string) []string { return args }
	if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		pin = func(cpu string, args ...string) []string { return append([]string{"taskset", "-c", cpu}, args...) }
	} else {
		fmt.Fprintln(os.Stderr, "bench: taskset or a second CPU is missing; running without CPU pinning")
	}

	fmt.Fprintln(os.Stderr, "bench: building gatehouse and the backend")
	gh := filepath.Join(tmp, "gatehouse")
	be := filepath.Join(tmp, "backend")
	for _, b := range [][2]string{{gh, "./cmd/gatehouse"}, {be, "./bench/backend"}} {
		if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	var procs harness.Processes
	defer procs.StopAll()

	backendAddr, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	if _, err := procs.Start("backend", pin("0", be, "-addr", backendAddr), []string{"GOMAXPROCS=1"}, tmp, nil); err != nil {
		return err
	}
	if err := harness.WaitHTTP(ctx, "http://"+backendAddr+"/"); err != nil {
		return fmt.Errorf("backend: %w", err)
	}

	// The identity provider, in this process: it is only asked for keys
	// at start.
	iss, bearer, stopIssuer, err := startIssuer()
	if err != nil {
		return err
	}
	defer stopIssuer()

	// startGatehouse runs bin as name, on the benchmark's configuration,
	// and returns its listener's and its admin listener's addresses.
	startGatehouse := func(name, bin string) (addr, admin string, err error) {
		addr, _ = harness.FreeAddr()
		admin, _ = harness.FreeAddr()
		cfg := filepath.Join(tmp, name+".yaml")
		if err := os.WriteFile(cfg, []byte(gatehouseConfig(addr, admin, iss.URL(), backendAddr)), 0o644); err != nil {
			return "", "", err
		}
		accessLog, err := os.Create(filepath.Join(tmp, name+"-access.log"))
		if err != nil {
			return "", "", err
		}
		defer accessLog.Close() // the child has its own descriptor
		if _, err := procs.Start(name, pin("0", bin, "serve", "--config", cfg, "--watch=false"), []string{"GOMAXPROCS=1"}, tmp, accessLog); err != nil {
			return "", "", err
		}
		if err := harness.WaitHTTP(ctx, "http://"+admin+"/readyz"); err != nil {
			return "", "", fmt.Errorf("%s: %w\n%s", name, err, procs.Stderr(name))
		}
		return addr, admin, nil
	}
	ghAddr, adminAddr, err := startGatehouse("gatehouse", gh)
	if err != nil {
		return err
	}
	baseAddr := ""
	if o.baseline != "" {
		bin, err := filepath.Abs(o.baseline)
		if err != nil {
			return err
		}
		if baseAddr, _, err = startGatehouse("baseline", bin); err != nil {
			return err
		}
	}

	scenarios := []scenario{
		{Name: "direct", URL: "http://" + backendAddr + "/bench/x", proc: "backend"},
		// The backend called directly with the five fields Gatehouse
		// forwards on every request (issue 2), so that what parsing them
		// costs the backend shows against direct.
		{Name: "direct-forwarding", URL: "http://" + backendAddr + "/bench/x", Headers: forwardedFields(ghAddr), open: true, proc: "backend"},
	}
	only := map[string]bool{} // -only's scenarios; empty: all
	for _, n := range strings.Split(o.only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			only[n] = true
		}
	}
	versions := map[string]string{}
	measured := map[string]bool{} // tools that run as a scenario
	// startReference runs the reference proxy r, when found, as a scenario
	// of its own, and records its version (the first line it prints). A
	// tool may run as more than one scenario (nginx): its version says
	// "not measured" only when none of them is.
	startReference := func(r reference) error {
		if !measured[r.tool] {
			versions[r.tool] = "not installed"
		}
		path := harness.ToolPath(r.flag, r.tool)
		if path == "" {
			return nil
		}
		if r.scenario == "" {
			r.scenario = r.tool
		}
		if len(only) > 0 && !only[r.scenario] {
			if !measured[r.tool] {
				versions[r.tool] = harness.Version(path, r.version...) + " (not measured)"
			}
			return nil
		}
		if r.ready == "" {
			r.ready = "/bench/x"
		}
		addr, err := harness.FreeAddr()
		if err != nil {
			return err
		}
		file := filepath.Join(tmp, r.file)
		conf, args := r.config(addr, file)
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			return err
		}
		if _, err := procs.Start(r.scenario, pin("0", append([]string{path}, args...)...), r.env, tmp, nil); err != nil {
			return err
		}
		if err := harness.WaitHTTP(ctx, "http://"+addr+r.ready); err != nil {
			return fmt.Errorf("%s: %w\n%s", r.scenario, err, procs.Stderr(r.scenario))
		}
		scenarios = append(scenarios, scenario{Name: r.scenario, URL: "http://" + addr + "/bench/x", Headers: r.headers, proc: r.scenario})
		versions[r.tool] = harness.Version(path, r.version...)
		measured[r.tool] = true
		return nil
	}
	// The second nginx keeps its files apart from the first's; nginx
	// makes its temporary directories, not their parent.
	ngxFwdDir := filepath.Join(tmp, "nginx-forwarding")
	if err := os.Mkdir(ngxFwdDir, 0o755); err != nil {
		return err
	}
	for _, r := range []reference{
		{tool: "nginx", flag: o.nginx, file: "nginx.conf", version: []string{"-v"}, config: func(addr, file string) (string, []string) {
			return harness.NginxConfig(tmp, addr, backendAddr), []string{"-c", file, "-p", tmp}
		}},
		// The same nginx setting the fields Gatehouse forwards.
		{scenario: "nginx-forwarding", tool: "nginx", flag: o.nginx, file: "nginx-forwarding.conf", version: []string{"-v"}, config: func(addr, file string) (string, []string) {
			return harness.NginxForwardingConfig(ngxFwdDir, addr, backendAddr), []string{"-c", file, "-p", ngxFwdDir}
		}},
		{tool: "haproxy", flag: o.haproxy, file: "haproxy.cfg", version: []string{"-v"}, config: func(addr, file string) (string, []string) {
			return harness.HAProxyConfig(tmp, addr, backendAddr), []string{"-f", file, "-db"}
		}},
		// Caddy's files (an instance id, locks) go to the temporary
		// directory rather than to ~/.local/share/caddy.
		{tool: "caddy", flag: o.caddy, env: []string{"GOMAXPROCS=1", "XDG_DATA_HOME=" + tmp, "XDG_CONFIG_HOME=" + tmp}, file: "caddy.json", version: []string{"version"},
			config: func(addr, file string) (string, []string) {
				return harness.CaddyConfig(addr, backendAddr), []string{"run", "--config", file}
			}},
		{scenario: "oauth2-proxy-jwt", tool: "oauth2-proxy", flag: o.oauth2Proxy, env: []string{"GOMAXPROCS=1"}, file: "oauth2-proxy.cfg", version: []string{"--version"}, ready: "/ping", headers: bearer,
			config: func(addr, file string) (string, []string) {
				return harness.OAuth2ProxyConfig(addr, backendAddr, iss.URL(), "bench"), []string{"--config", file}
			}},
	} {
		if err := startReference(r); err != nil {
			return err
		}
	}
	scenarios = append(scenarios,
		scenario{Name: "gatehouse-passthrough", URL: "http://" + ghAddr + "/pass/x", proc: "gatehouse"},
		scenario{Name: "gatehouse-full-chain", URL: "http://" + ghAddr + "/full/x", Headers: bearer, proc: "gatehouse"},
	)
	if baseAddr != "" {
		scenarios = append(scenarios,
			scenario{Name: "baseline-passthrough", URL: "http://" + baseAddr + "/pass/x", proc: "baseline"},
			scenario{Name: "baseline-full-chain", URL: "http://" + baseAddr + "/full/x", Headers: bearer, proc: "baseline"},
		)
	}
	if len(only) > 0 {
		var sel []scenario
		for _, s := range scenarios {
			if only[s.Name] {
				sel = append(sel, s)
				delete(only, s.Name)
			}
		}
		for n := range only {
			return fmt.Errorf("-only %s: no such scenario here (misspelt, or its tool is not installed)", n)
		}
		scenarios = sel
	}
	// Every scenario must answer 200 before anything is measured, and one
	// that sends a token must be refused without it: it does validate.
	for _, s := range scenarios {
		if err := check(s, 200); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if s.Headers != nil && !s.open {
			if err := check(scenario{URL: s.URL}, 401); err != nil {
				return fmt.Errorf("%s without its token: %w", s.Name, err)
			}
		}
	}

	lg, err := newLoadgen(o.loadgen, pin)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: load generator %s; %d rounds × %d scenarios × (%s at %d connections + %s at 1)\n",
		lg.name(), o.rounds, len(scenarios), o.duration, o.conns, o.oneDuration)
	results := map[string]*result{}
	for _, s := range scenarios {
		results[s.Name] = &result{Scenario: s.Name}
	}
	order := measureOrder(scenarios)
	for round := 1; round <= o.rounds; round++ {
		for i := range order {
			s := order[i]
			if round%2 == 0 {
				s = order[len(order)-1-i]
			}
			pid, bpid := procs.PID(s.proc), procs.PID("backend")
			var prof func()
			if o.profile != "" && round == 1 && s.proc == "gatehouse" {
				prof = startProfiles(ctx, adminAddr, filepath.Join(o.profile, s.Name), o.duration)
			}
			user0, sys0 := harness.CPUTimes(pid)
			buser0, bsys0 := harness.CPUTimes(bpid)
			hi, err := lg.run(ctx, s, o.conns, o.duration)
			if prof != nil {
				prof()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			if n := hi.RPS * o.duration.Seconds(); n > 0 && user0 >= 0 {
				user1, sys1 := harness.CPUTimes(pid)
				hi.CPUus = float64((user1 + sys1 - user0 - sys0).Microseconds()) / n
				hi.SysUs = float64((sys1 - sys0).Microseconds()) / n
				if buser0 >= 0 {
					buser1, bsys1 := harness.CPUTimes(bpid)
					hi.BackendUs = float64((buser1 + bsys1 - buser0 - bsys0).Microseconds()) / n
				}
			}
			one, err := lg.run(ctx, s, 1, o.oneDuration)
			if err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			r := results[s.Name]
			r.High, r.One = append(r.High, hi), append(r.One, one)
			fmt.Fprintf(os.Stderr, "bench: round %d %-22s %9.0f req/s  p50 %7.0fµs  p99 %7.0fµs  cpu %5.1fµs/req (kernel %4.1f) | 1 conn: p50 %6.0fµs\n",
				round, s.Name, hi.RPS, hi.P50us, hi.P99us, hi.CPUus, hi.SysUs, one.P50us)
		}
	}
	var inter *interleaved
	if o.interleave > 0 && len(scenarios) > 1 {
		fmt.Fprintf(os.Stderr, "bench: one connection, the %d scenarios in turn, for %s\n", len(scenarios), o.interleave)
		self, err := os.Executable()
		if err != nil {
			return err
		}
		if inter, err = runInterleaved(ctx, self, pin, order, o.interleave); err != nil {
			return err
		}
	}
	rep := &report{
		Interleaved: inter,
		Date:        time.Now().UTC().Format(time.RFC3339),
		Machine: map[string]string{
			"cpus": fmt.Sprint(runtime.NumCPU()), "cpu": harness.CPUModel(), "os": runtime.GOOS + "/" + runtime.GOARCH,
			"go": runtime.Version(), "loadgen": lg.name(),
		},
		Options: map[string]any{"rounds": o.rounds, "duration": o.duration.String(), "one_duration": o.oneDuration.String(), "connections": o.conns, "interleave": o.interleave.String(),
			"pinning": "backend and proxy on CPU 0 (Go programs, Caddy and oauth2-proxy included, with GOMAXPROCS=1; 1 nginx worker; 1 HAProxy thread), load generator on CPU 1"},
		Ratios:  map[string]float64{},
		Targets: map[string]string{},
	}
	for tool, v := range versions {
		rep.Machine[tool] = v
	}
	for _, s := range scenarios {
		r := results[s.Name]
		r.HighMed, r.OneMed = median(r.High), median(r.One)
		rep.Results = append(rep.Results, r)
	}
	ratios(rep, results)
	return finishReport(rep, o.out)
}

// finishReport prints rep and writes it as JSON to out (none when empty).
func finishReport(rep *report, out string) error {
	printReport(os.Stdout, rep)
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "bench: wrote", out)
	return nil
}

// rereport reads the JSON result of an earlier run from file and
// computes its ratios and targets again, with this version's rules.
func rereport(file, out string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	rs := map[string]*result{}
	for _, r := range rep.Results {
		rs[r.Scenario] = r
	}
	rep.Ratios, rep.Targets = map[string]float64{}, map[string]string{}
	ratios(&rep, rs)
	return finishReport(&rep, out)
}

// startProfiles takes a CPU profile of Gatehouse over most of a
// measurement of duration d, through its admin listener, and the
// allocations made meanwhile; the returned function waits for them and
// writes prefix.cpu.pprof and prefix.allocs.pprof (compare the latter
// with -base prefix.allocs-base.pprof).
func startProfiles(ctx context.Context, admin, prefix string, d time.Duration) func() {
	get := func(path, file string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+admin+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: profile:", err)
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err == nil && res.StatusCode == 200 {
			err = os.WriteFile(file, b, 0o644)
		}
		if err != nil || res.StatusCode != 200 {
			fmt.Fprintln(os.Stderr, "bench: profile", path, res.Status, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		return func() {}
	}
	get("/debug/pprof/allocs", prefix+".allocs-base.pprof")
	secs := max(1, int(d.Seconds())-2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(time.Second)
		get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), prefix+".cpu.pprof")
	}()
	return func() {
		<-done
		get("/debug/pprof/allocs", prefix+".allocs.pprof")
		fmt.Fprintf(os.Stderr, "bench: wrote %s.{cpu,allocs,allocs-base}.pprof\n", prefix)
	}
}

func ratios(rep *report, rs map[string]*result) {
	get := func(n string) *result { return rs[n] }
	direct, ng, hp, pass, full := get("direct"), get("nginx"), get("haproxy"), get("gatehouse-passthrough"), get("gatehouse-full-chain")
	cd, o2p := get("caddy"), get("oauth2-proxy-jwt")
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	if pass != nil && direct != nil {
		rep.Ratios["passthrough_vs_direct_rps"] = div(pass.HighMed.RPS, direct.HighMed.RPS)
	}
	// The median of the ratios within each round: scenarios measured
	// seconds apart share the machine's load of the moment.
	perRound := func(a, b *result) float64 {
		var v []float64
		for i := 0; i < len(a.High) && i < len(b.High); i++ {
			if b.High[i].RPS > 0 {
				v = append(v, a.High[i].RPS/b.High[i].RPS)
			}
		}
		return harness.Median(v)
	}
	// gapPerRound is the median over the rounds of a's p50 at one
	// connection minus b's. (Per round, the p50s added over the direct
	// call differ by that much: the direct call's cancels out.)
	gapPerRound := func(a, b *result) float64 {
		var gap []float64
		for i := 0; i < len(a.One) && i < len(b.One); i++ {
			gap = append(gap, a.One[i].P50us-b.One[i].P50us)
		}
		return harness.Median(gap)
	}
	// against compares Gatehouse's scenario g with the reference ref
	// (key: g_vs_ref): requests/s, their per-round median and CPU time
	// per request.
	against := func(key string, g, ref *result) {
		if g == nil || ref == nil {
			return
		}
		rep.Ratios[key+"_rps"] = div(g.HighMed.RPS, ref.HighMed.RPS)
		rep.Ratios[key+"_rps_round_median"] = perRound(g, ref)
		rep.Ratios[key+"_cpu_per_request"] = div(g.HighMed.CPUus, ref.HighMed.CPUus)
		if g.HighMed.SysUs > 0 && ref.HighMed.SysUs > 0 {
			rep.Ratios[key+"_user_cpu_per_request"] = div(g.HighMed.CPUus-g.HighMed.SysUs, ref.HighMed.CPUus-ref.HighMed.SysUs)
			rep.Ratios[key+"_kernel_cpu_per_request"] = div(g.HighMed.SysUs, ref.HighMed.SysUs)
		}
		if g.HighMed.BackendUs > 0 && ref.HighMed.BackendUs > 0 {
			// The backend's CPU per request behind each, and the core's
			// (the proxy's and the backend's): what requests/s follows.
			rep.Ratios[key+"_backend_cpu_per_request"] = div(g.HighMed.BackendUs, ref.HighMed.BackendUs)
			rep.Ratios[key+"_shared_core_cpu_per_request"] = div(g.HighMed.CPUus+g.HighMed.BackendUs, ref.HighMed.CPUus+ref.HighMed.BackendUs)
		}
	}
	against("passthrough_vs_nginx", pass, ng)
	if pass != nil && ng != nil && pass.HighMed.BackendUs > 0 && ng.HighMed.BackendUs > 0 && pass.HighMed.SysUs > 0 && ng.HighMed.SysUs > 0 {
		// Where passthrough's extra CPU per request on the shared core
		// goes, in µs: Gatehouse's user space, its kernel time (the
		// system calls, with the loopback delivery of what it writes),
		// and the backend's (parsing the fields Gatehouse forwards).
		p, n := pass.HighMed, ng.HighMed
		rep.Ratios["passthrough_vs_nginx_extra_us_user"] = (p.CPUus - p.SysUs) - (n.CPUus - n.SysUs)
		rep.Ratios["passthrough_vs_nginx_extra_us_kernel"] = p.SysUs - n.SysUs
		rep.Ratios["passthrough_vs_nginx_extra_us_backend"] = p.BackendUs - n.BackendUs
	}
	against("passthrough_vs_nginx_forwarding", pass, get("nginx-forwarding"))
	against("passthrough_vs_haproxy", pass, hp)
	against("passthrough_vs_caddy", pass, cd)
	against("full_chain_vs_oauth2_proxy", full, o2p)
	for _, kind := range []string{"passthrough", "full-chain"} {
		cur, base := get("gatehouse-"+kind), get("baseline-"+kind)
		if cur == nil || base == nil {
			continue
		}
		k := strings.ReplaceAll(kind, "-", "_")
		rep.Ratios[k+"_vs_baseline_cpu_per_request"] = div(cur.HighMed.CPUus, base.HighMed.CPUus)
		rep.Ratios[k+"_vs_baseline_rps_round_median"] = perRound(cur, base)
	}
	if full != nil && pass != nil {
		rep.Ratios["full_chain_vs_passthrough_rps_round_median"] = perRound(full, pass)
	}
	// The targets are judged on the per-round medians: a change of the
	// machine's load between rounds moves both sides of a round's ratio
	// together, but can move one side's median and not the other's.
	if pass != nil && ng != nil {
		rep.Targets["passthrough >= 1.0x nginx req/s"] = verdict(rep.Ratios["passthrough_vs_nginx_rps_round_median"] >= 1.0)
	}
	for name, ref := range map[string]*result{"haproxy": hp, "caddy": cd, "oauth2_proxy": o2p} {
		if ref != nil && direct != nil {
			rep.Ratios[name+"_added_p50_us_1conn"] = ref.OneMed.P50us - direct.OneMed.P50us
		}
	}
	if full != nil && ng != nil {
		rep.Ratios["full_chain_vs_nginx_rps"] = div(full.HighMed.RPS, ng.HighMed.RPS)
	}
	if full != nil && pass != nil {
		rep.Ratios["full_chain_vs_passthrough_cpu_per_request"] = div(full.HighMed.CPUus, pass.HighMed.CPUus)
		rep.Ratios["full_chain_vs_passthrough_rps"] = div(full.HighMed.RPS, pass.HighMed.RPS)
		rep.Targets["full chain >= 0.85x passthrough req/s"] = verdict(rep.Ratios["full_chain_vs_passthrough_rps_round_median"] >= 0.85)
	}
	if ng != nil && direct != nil {
		rep.Ratios["nginx_vs_direct_rps"] = div(ng.HighMed.RPS, direct.HighMed.RPS)
		rep.Ratios["nginx_added_p50_us_1conn"] = ng.OneMed.P50us - direct.OneMed.P50us
	}
	if pass != nil && direct != nil {
		rep.Ratios["passthrough_added_p50_us_1conn"] = pass.OneMed.P50us - direct.OneMed.P50us
		if ng != nil {
			rep.Ratios["added_p50_passthrough_vs_nginx"] = div(rep.Ratios["passthrough_added_p50_us_1conn"], rep.Ratios["nginx_added_p50_us_1conn"])
			gap := gapPerRound(pass, ng)
			rep.Ratios["p50_gap_vs_nginx_us_1conn_round_median"] = gap
			rep.Targets["1-conn added p50 <= nginx's"] = verdict(gap <= 0)
		}
	}
	if nf := get("nginx-forwarding"); pass != nil && nf != nil {
		rep.Ratios["p50_gap_vs_nginx_forwarding_us_1conn_round_median"] = gapPerRound(pass, nf)
	}
	if df := get("direct-forwarding"); df != nil && direct != nil {
		// What the forwarded fields cost the backend: its requests/s and
		// CPU per request with them against without, and at one
		// connection the p50 they add.
		rep.Ratios["direct_forwarding_vs_direct_rps_round_median"] = perRound(df, direct)
		rep.Ratios["forwarded_fields_backend_extra_us"] = df.HighMed.CPUus - direct.HighMed.CPUus
		rep.Ratios["forwarded_fields_added_p50_us_1conn_round_median"] = gapPerRound(df, direct)
	}
	if full != nil && direct != nil {
		rep.Ratios["full_chain_added_p50_us_1conn"] = full.OneMed.P50us - direct.OneMed.P50us
	}
	interleavedRatios(rep)
}

// interleavedRatios adds the interleaved one-connection measurement's
// figures: each p50 added over direct's, the difference of Gatehouse's
// and nginx's p50s (the target: at most zero) and the paired gaps.
func interleavedRatios(rep *report) {
	in := rep.Interleaved
	if in == nil || in.Cycles == 0 {
		return
	}
	has := func(n string) bool { _, ok := in.P50us[n]; return ok }
	const pass, ng = "gatehouse-passthrough", "nginx"
	if has("direct") {
		for _, n := range []string{ng, pass, "gatehouse-full-chain", "nginx-forwarding"} {
			if has(n) {
				rep.Ratios[strings.ReplaceAll(strings.TrimPrefix(n, "gatehouse-"), "-", "_")+"_added_p50_us_1conn_interleaved"] = in.P50us[n] - in.P50us["direct"]
			}
		}
	}
	if has(pass) && has(ng) {
		gap := in.P50us[pass] - in.P50us[ng]
		rep.Ratios["p50_gap_vs_nginx_us_1conn_interleaved"] = gap
		rep.Ratios["p50_gap_vs_nginx_us_1conn_interleaved_paired"] = in.GapUs[pass][ng]
		rep.Targets["1-conn added p50 <= nginx's (interleaved)"] = verdict(gap <= 0)
	}
	for _, o := range []struct{ a, b, key string }{
		{"direct-forwarding", "direct", "forwarded_fields_added_p50_us_1conn_interleaved_paired"},
		{pass, "nginx-forwarding", "p50_gap_vs_nginx_forwarding_us_1conn_interleaved_paired"},
		{pass, "baseline-passthrough", "p50_gap_vs_baseline_us_1conn_interleaved_paired"},
		{"gatehouse-full-chain", pass, "full_chain_p50_gap_vs_passthrough_us_1conn_interleaved_paired"},
		{"gatehouse-full-chain", "baseline-full-chain", "full_chain_p50_gap_vs_baseline_us_1conn_interleaved_paired"},
	} {
		if has(o.a) && has(o.b) {
			rep.Ratios[o.key] = in.GapUs[o.a][o.b]
		}
	}
}

// measureOrder is the order in which a round measures the scenarios:
// those whose ratios are the targets next to each other (nginx, then
// Gatehouse passthrough, then its baseline, then the full chain), the
// other references after them. Even rounds run it backwards, so that a
// load that rises or falls through a round weighs on both sides of a
// ratio alike over two rounds.
func measureOrder(scenarios []scenario) []scenario {
	rank := map[string]int{"direct": 0, "direct-forwarding": 1, "nginx": 2, "gatehouse-passthrough": 3, "baseline-passthrough": 4,
		"gatehouse-full-chain": 5, "baseline-full-chain": 6, "nginx-forwarding": 7, "haproxy": 8, "caddy": 9, "oauth2-proxy-jwt": 10}
	order := slices.Clone(scenarios)
	slices.SortStableFunc(order, func(a, b scenario) int {
		ra, oka := rank[a.Name]
		rb, okb := rank[b.Name]
		if !oka {
			ra = len(rank)
		}
		if !okb {
			rb = len(rank)
		}
		return ra - rb
	})
	return order
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func printReport(w io.Writer, rep *report) {
	var refs []string
	for _, tool := range []string{"nginx", "haproxy", "caddy", "oauth2-proxy"} {
		v := rep.Machine[tool]
		if !strings.Contains(strings.ToLower(v), tool) {
			v = tool + " " + v // caddy prints its version alone
		}
		refs = append(refs, v)
	}
	fmt.Fprintf(w, "\nGatehouse benchmark, %s — %s CPUs (%s), %s, load generator %s, %s\n\n",
		rep.Date, rep.Machine["cpus"], rep.Machine["cpu"], rep.Machine["go"], rep.Machine["loadgen"], strings.Join(refs, ", "))
	fmt.Fprintf(w, "| scenario | req/s (64 conns) | p50 | p99 | CPU per request | of which kernel | the backend's CPU per request | p50 at 1 conn | p99 at 1 conn |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Results {
		kernel, backend := "—", "—" // not recorded before the sixth session, and 2026-11-27
		if r.HighMed.SysUs > 0 {
			kernel = fmt.Sprintf("%.1f µs", r.HighMed.SysUs)
		}
		if r.HighMed.BackendUs > 0 {
			backend = fmt.Sprintf("%.1f µs", r.HighMed.BackendUs)
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %.1f µs | %s | %s | %s | %s |\n", r.Scenario, r.HighMed.RPS,
			us(r.HighMed.P50us), us(r.HighMed.P99us), r.HighMed.CPUus, kernel, backend, us(r.OneMed.P50us), us(r.OneMed.P99us))
	}
	if u, ok := rep.Ratios["passthrough_vs_nginx_extra_us_user"]; ok {
		k, b := rep.Ratios["passthrough_vs_nginx_extra_us_kernel"], rep.Ratios["passthrough_vs_nginx_extra_us_backend"]
		fmt.Fprintf(w, "\npassthrough against nginx, CPU per request on the core they share with the backend: %+.1f µs (Gatehouse's user space %+.1f, its kernel time %+.1f, the backend's %+.1f)\n", u+k+b, u, k, b)
	}
	if b, ok := rep.Ratios["forwarded_fields_backend_extra_us"]; ok {
		fmt.Fprintf(w, "the five fields Gatehouse forwards, sent straight to the backend (direct-forwarding against direct): %+.1f µs of the backend's CPU per request, %.3f× its requests/s", b, rep.Ratios["direct_forwarding_vs_direct_rps_round_median"])
		if g, ok := rep.Ratios["forwarded_fields_added_p50_us_1conn_interleaved_paired"]; ok {
			fmt.Fprintf(w, ", %+.1f µs at one connection (in turn, paired)", g)
		}
		fmt.Fprintln(w)
	}
	if in := rep.Interleaved; in != nil && in.Cycles > 0 {
		fmt.Fprintf(w, "\none connection, the scenarios in turn (%d cycles in %s):\n\n| scenario | p50 | p99 | errors | p50 minus nginx's, paired |\n|---|---:|---:|---:|---:|\n", in.Cycles, in.Duration)
		for _, r := range rep.Results {
			p50, ok := in.P50us[r.Scenario]
			if !ok {
				continue
			}
			gap := "—"
			if g, ok := in.GapUs[r.Scenario]["nginx"]; ok {
				gap = fmt.Sprintf("%+.1f µs", g)
			}
			fmt.Fprintf(w, "| %s | %.1f µs | %s | %d | %s |\n", r.Scenario, p50, us(in.P99us[r.Scenario]), in.Errors[r.Scenario], gap)
		}
	}
	keys := make([]string, 0, len(rep.Ratios))
	for k := range rep.Ratios {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "\nratios (medians of the same run):")
	for _, k := range keys {
		fmt.Fprintf(w, "  %-50s %.3f\n", k, rep.Ratios[k])
	}
	tk := make([]string, 0, len(rep.Targets))
	for k := range rep.Targets {
		tk = append(tk, k)
	}
	sort.Strings(tk)
	fmt.Fprintln(w, "\ntargets (judged on the medians of the per-round ratios and differences; \"interleaved\": on the interleaved measurement's p50s):")
	for _, k := range tk {
		fmt.Fprintf(w, "  %-40s %s\n", k, rep.Targets[k])
	}
}

func us(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func median(s []sample) sample {
	pick := func(get func(sample) float64) float64 {
		v := make([]float64, len(s))
		for i := range s {
			v[i] = get(s[i])
		}
		return harness.Median(v)
	}
	m := sample{
		RPS:       pick(func(x sample) float64 { return x.RPS }),
		P50us:     pick(func(x sample) float64 { return x.P50us }),
		P99us:     pick(func(x sample) float64 { return x.P99us }),
		CPUus:     pick(func(x sample) float64 { return x.CPUus }),
		SysUs:     pick(func(x sample) float64 { return x.SysUs }),
		BackendUs: pick(func(x sample) float64 { return x.BackendUs }),
	}
	for _, x := range s {
		m.Errs += x.Errs
	}
	return m
}

// check sends the request of s and expects the status want.
func check(s scenario, want int) error {
	req, _ := http.NewRequest("GET", s.URL, nil)
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != want {
		return fmt.Errorf("status %d, want %d: %s", res.StatusCode, want, body)
	}
	return nil
}

// startIssuer serves an OIDC issuer for the audience "bench" on loopback
// and returns it, the headers of a request with a token it signed (scope
// bench:read, group benchers: what the full chain requires), and what
// stops it.
func startIssuer() (*devissuer.Issuer, map[string]string, func(), error) {
	iss, err := devissuer.New(devissuer.Options{Audience: "bench"})
	if err != nil {
		return nil, nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, nil, err
	}
	srv := &http.Server{Handler: iss.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	iss.SetURL("http://" + ln.Addr().String())
	token, err := iss.Mint(map[string]any{"sub": "bench-client", "aud": "bench", "scope": "bench:read", "groups": []string{"benchers"}, "exp": time.Now().Add(24 * time.Hour).Unix()})
	if err != nil {
		srv.Close()
		return nil, nil, nil, err
	}
	return iss, map[string]string{"Authorization": "Bearer " + token}, func() { srv.Close() }, nil
}

// forwardedFields are the fields Gatehouse adds to a client's request
// that sends none of them (issue 2), as it writes them for a client on
// loopback reaching it at host: X-Forwarded-For, -Host and -Proto, a
// request ID and a traceparent made of it. The IDs are fixed here; their
// length, which is what parsing them costs, is Gatehouse's.
func forwardedFields(host string) map[string]string {
	const id = "65fa136307322bc33900634c7519613b"
	return map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  host,
		"X-Forwarded-Proto": "http",
		"X-Request-Id":      id,
		"Traceparent":       "00-" + id + "-24622fb200a9344c-01",
	}
}

func gatehouseConfig(addr, admin, issuer, backend string) string {
	return fmt.Sprintf(`# generated by go run ./bench
server:
  listeners: [{name: public, address: %q}]
  admin: {address: %q, insecure_local: true}   # loopback: profiles at /debug/pprof/ without credentials
`, addr, admin) + harness.GatehouseRoutes(issuer, backend)
}
