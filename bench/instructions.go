package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/bench/callgrind"
	"github.com/gatehouse-dev/gatehouse/bench/harness"
)

// The instruction count is the benchmark for a noisy machine: each proxy
// runs under valgrind's callgrind, which counts the instructions it
// executes in user space whatever else the machine is doing, and the
// count is taken over n requests sent one after another on one kept-alive
// connection, after a warm-up (callgrind_control zeroes it, then dumps
// it). The kernel's share of the work is not in it: the count compares
// what each proxy does itself, not its requests per second.

// instrTarget is one thing counted: a proxy process and the requests
// sent to it.
type instrTarget struct {
	name    string
	argv    []string
	env     []string
	url     string            // where the requests go
	ready   string            // answers 200 once the proxy is up
	headers map[string]string // sent with each request
	bare    bool              // without Go's client's User-Agent and Accept-Encoding: as wrk sends it
}

// instrResult is a target's instructions per request, one per run, and
// the same without the Go runtime's search for work (callgrind's
// SearchForWork: its polling while the proxy waits for the client or
// the backend moves a one-connection count from run to run).
type instrResult struct {
	Target     string    `json:"target"`
	Runs       []float64 `json:"instructions_per_request"`
	Median     float64   `json:"median"`
	RestRuns   []float64 `json:"without_search_for_work"`
	RestMedian float64   `json:"median_without_search_for_work"`
}

// browserFields are the request fields of a browser's fetch() of a JSON
// API from another origin of the same site, besides Host: ten fields, 440
// bytes. wrk and the benchmark's Go client send one or three; a real
// client's fields are work that a proxy's cost per request grows with.
var browserFields = map[string]string{
	"User-Agent":       "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Accept":           "application/json, text/plain, */*",
	"Accept-Language":  "en-US,en;q=0.9",
	"Accept-Encoding":  "gzip, deflate, br, zstd",
	"Referer":          "https://app.example.com/orders",
	"Origin":           "https://app.example.com",
	"Sec-Fetch-Mode":   "cors",
	"Sec-Fetch-Site":   "same-site",
	"Cookie":           "session=9f2c4e1a7b3d5f60a8c2e4b6d8f0a1c3; theme=dark",
	"X-Client-Version": "4.12.0",
}

// browserSuffix names the targets that send browserFields.
const browserSuffix = "-browser-fields"

// apiResponseFields are the fields a JSON API's response to such a fetch
// carries besides Date, Content-Length and Content-Type: eight, 320
// bytes. The backend adds them for a path that ends in /api, which the
// targets named with exchangeSuffix ask for, with browserFields.
var apiResponseFields = map[string]string{
	"Cache-Control":                    "no-store",
	"Etag":                             `"33a64df551425fcc55e4d42a148795d9f25f89d4"`,
	"Vary":                             "Origin, Accept-Encoding",
	"Strict-Transport-Security":        "max-age=63072000; includeSubDomains",
	"X-Content-Type-Options":           "nosniff",
	"Content-Security-Policy":          "default-src 'none'; frame-ancestors 'none'",
	"Access-Control-Allow-Origin":      "https://app.example.com",
	"Access-Control-Allow-Credentials": "true",
}

// exchangeSuffix names the targets of a browser's whole exchange: its
// request fields and an API response's.
const exchangeSuffix = "-browser-exchange"

// runInstructions counts the instructions per request of Gatehouse (and
// the baseline build, nginx and nginx-forwarding when there are) for n
// requests, runs times each, interleaved.
func runInstructions(o options, n, runs int) error {
	valgrind, err := exec.LookPath("valgrind")
	if err != nil {
		return errors.New("-instructions needs valgrind (apt-get install valgrind)")
	}
	control, err := exec.LookPath("callgrind_control")
	if err != nil {
		return errors.New("-instructions needs callgrind_control (valgrind's)")
	}
	tmp, err := os.MkdirTemp("", "gatehouse-bench-instr")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	gh := filepath.Join(tmp, "gatehouse")
	if out, err := exec.Command("go", "build", "-o", gh, "./cmd/gatehouse").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/gatehouse: %v\n%s", err, out)
	}

	// The backend and the identity provider run in this process: only
	// the proxy is counted.
	beLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	beSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/api") {
			for k, v := range apiResponseFields {
				w.Header()[k] = []string{v}
			}
		}
		io.WriteString(w, "hello from the backend\n")
	}), ReadHeaderTimeout: 5 * time.Second}
	go beSrv.Serve(beLn)
	defer beSrv.Close()
	backend := beLn.Addr().String()
	iss, bearer, stopIssuer, err := startIssuer()
	if err != nil {
		return err
	}
	defer stopIssuer()

	// callgrind cannot take the preemption signal, nor decode RDTSCP,
	// which the runtime's cputicks uses where the CPU has it (a contended
	// lock reads it): on such a machine a Go target died of SIGILL now
	// and then, at start or under the count.
	goEnv := []string{"GOMAXPROCS=1", "GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off"}
	var targets []instrTarget
	gatehouse := func(name, bin string) error {
		addr, _ := harness.FreeAddr()
		admin, _ := harness.FreeAddr()
		cfg := filepath.Join(tmp, name+".yaml")
		if err := os.WriteFile(cfg, []byte(gatehouseConfig(addr, admin, iss.URL(), backend)), 0o644); err != nil {
			return err
		}
		argv := []string{bin, "serve", "--config", cfg, "--watch=false"}
		targets = append(targets,
			instrTarget{name: name + "-passthrough", argv: argv, env: goEnv, url: "http://" + addr + "/pass/x", ready: "http://" + admin + "/readyz"},
			instrTarget{name: name + "-full-chain", argv: argv, env: goEnv, url: "http://" + addr + "/full/x", ready: "http://" + admin + "/readyz", headers: bearer})
		if o.browser {
			targets = append(targets,
				instrTarget{name: name + "-passthrough" + browserSuffix, argv: argv, env: goEnv, url: "http://" + addr + "/pass/x", ready: "http://" + admin + "/readyz", headers: browserFields},
				instrTarget{name: name + "-passthrough" + exchangeSuffix, argv: argv, env: goEnv, url: "http://" + addr + "/pass/api", ready: "http://" + admin + "/readyz", headers: browserFields})
		}
		return nil
	}
	if err := gatehouse("gatehouse", gh); err != nil {
		return err
	}
	if o.baseline != "" {
		bin, err := filepath.Abs(o.baseline)
		if err != nil {
			return err
		}
		if err := gatehouse("baseline", bin); err != nil {
			return err
		}
	}
	if path := harness.ToolPath(o.nginx, "nginx"); path != "" {
		for _, v := range []struct {
			name   string
			config func(dir, addr, backend string) string
		}{{"nginx", harness.NginxConfig}, {"nginx-forwarding", harness.NginxForwardingConfig}} {
			dir := filepath.Join(tmp, v.name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			addr, _ := harness.FreeAddr()
			conf := filepath.Join(dir, "nginx.conf")
			if err := os.WriteFile(conf, []byte(v.config(dir, addr, backend)), 0o644); err != nil {
				return err
			}
			argv := []string{path, "-c", conf, "-p", dir, "-g", "master_process off;"}
			targets = append(targets, instrTarget{name: v.name, url: "http://" + addr + "/pass/x", ready: "http://" + addr + "/pass/x", argv: argv})
			if o.browser && v.name == "nginx" {
				targets = append(targets,
					instrTarget{name: v.name + browserSuffix, url: "http://" + addr + "/pass/x", ready: "http://" + addr + "/pass/x", argv: argv, headers: browserFields},
					instrTarget{name: v.name + exchangeSuffix, url: "http://" + addr + "/pass/api", ready: "http://" + addr + "/pass/x", argv: argv, headers: browserFields})
			}
		}
	}

	request := "Go's client: Host, User-Agent, Accept-Encoding"
	if o.wrkRequest {
		request = "as wrk sends it: Host alone"
		for i := range targets {
			targets[i].bare = true
		}
	}
	fmt.Fprintf(os.Stderr, "bench: instructions per request under callgrind, %d requests (%s) on one connection, %d runs of %d targets\n", n, request, runs, len(targets))
	counts, rests := map[string][]float64{}, map[string][]float64{}
	for run := 0; run < runs; run++ {
		for _, t := range targets {
			v, rest, err := countInstructions(valgrind, control, tmp, t, n)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			counts[t.name] = append(counts[t.name], v)
			rests[t.name] = append(rests[t.name], rest)
			fmt.Fprintf(os.Stderr, "bench: run %d %-28s %8.0f instructions per request (%.0f without the runtime's search for work)\n", run+1, t.name, v, rest)
			if o.profile != "" {
				if err := keepDump(tmp, o.profile, t.name); err != nil {
					return err
				}
			}
		}
	}

	var results []instrResult
	med, restMed := map[string]float64{}, map[string]float64{}
	fmt.Printf("\nInstructions per request in user space (callgrind, %d requests (%s) on one connection, %d runs), %s, %s\n\n", n, request, runs, harness.CPUModel(), runtime.Version())
	fmt.Println("| target | instructions per request (median) | runs | without the Go runtime's search for work (median) |")
	fmt.Println("|---|---:|---|---:|")
	for _, t := range targets {
		m, rm := harness.Median(counts[t.name]), harness.Median(rests[t.name])
		med[t.name], restMed[t.name] = m, rm
		results = append(results, instrResult{Target: t.name, Runs: counts[t.name], Median: m, RestRuns: rests[t.name], RestMedian: rm})
		var rs []string
		for _, v := range counts[t.name] {
			rs = append(rs, strconv.FormatFloat(v, 'f', 0, 64))
		}
		fmt.Printf("| %s | %.0f | %s | %.0f |\n", t.name, m, strings.Join(rs, ", "), rm)
	}
	ratios := map[string]float64{}
	ratio := func(name, a, b string) {
		if med[a] > 0 && med[b] > 0 {
			ratios[name] = med[a] / med[b]
		}
		// Only between Gatehouse builds: nginx's own wait for events is
		// in its count, and not the Go runtime's.
		goOnly := !strings.HasPrefix(a, "nginx") && !strings.HasPrefix(b, "nginx")
		if goOnly && restMed[a] > 0 && restMed[b] > 0 {
			ratios[name+"_without_search_for_work"] = restMed[a] / restMed[b]
		}
	}
	ratio("passthrough_vs_nginx", "gatehouse-passthrough", "nginx")
	ratio("passthrough_vs_nginx_forwarding", "gatehouse-passthrough", "nginx-forwarding")
	ratio("full_chain_vs_passthrough", "gatehouse-full-chain", "gatehouse-passthrough")
	ratio("passthrough_vs_baseline", "gatehouse-passthrough", "baseline-passthrough")
	ratio("full_chain_vs_baseline", "gatehouse-full-chain", "baseline-full-chain")
	ratio("passthrough_browser_fields_vs_nginx", "gatehouse-passthrough"+browserSuffix, "nginx"+browserSuffix)
	ratio("passthrough_browser_fields_vs_baseline", "gatehouse-passthrough"+browserSuffix, "baseline-passthrough"+browserSuffix)
	ratio("passthrough_browser_exchange_vs_nginx", "gatehouse-passthrough"+exchangeSuffix, "nginx"+exchangeSuffix)
	ratio("passthrough_browser_exchange_vs_baseline", "gatehouse-passthrough"+exchangeSuffix, "baseline-passthrough"+exchangeSuffix)
	// What each field costs: for a request field, the difference between
	// the counts with and without browserFields (the Go client sends two
	// fields of its own, User-Agent and Accept-Encoding, which
	// browserFields replaces; with -wrk-request none) over the fields
	// added; for a response field,
	// the difference that apiResponseFields make to the same request.
	perField := map[string]map[string]float64{"request": {}, "response": {}}
	clientFields := 2 // the Go client's own, which browserFields replace
	if o.wrkRequest {
		clientFields = 0
	}
	for _, name := range []string{"gatehouse-passthrough", "baseline-passthrough", "nginx"} {
		if with, without := med[name+browserSuffix], med[name]; with > 0 && without > 0 {
			perField["request"][name] = (with - without) / float64(len(browserFields)-clientFields)
		}
		if with, without := med[name+exchangeSuffix], med[name+browserSuffix]; with > 0 && without > 0 {
			perField["response"][name] = (with - without) / float64(len(apiResponseFields))
		}
	}
	for _, side := range []string{"request", "response"} {
		pf := perField[side]
		if len(pf) == 0 {
			delete(perField, side)
			continue
		}
		fmt.Printf("\ninstructions per added %s field (medians; %s):\n", side, map[string]string{
			"request":  map[bool]string{false: "a browser's ten fields less the Go client's two, over the eight more", true: "a browser's ten fields, over the request as wrk sends it"}[o.wrkRequest],
			"response": "an API response's eight fields more, to the browser's request",
		}[side])
		for _, k := range slices.Sorted(maps.Keys(pf)) {
			fmt.Printf("  %-28s %.0f\n", k, pf[k])
		}
		if pf["nginx"] > 0 && pf["gatehouse-passthrough"] > 0 {
			ratios["per_"+side+"_field_vs_nginx"] = pf["gatehouse-passthrough"] / pf["nginx"]
		}
	}
	fmt.Println("\nratios of the medians:")
	for _, k := range slices.Sorted(maps.Keys(ratios)) {
		fmt.Printf("  %-52s %.3f\n", k, ratios[k])
	}
	if o.out == "" {
		return nil
	}
	b, err := json.MarshalIndent(map[string]any{
		"date":     time.Now().UTC().Format(time.RFC3339),
		"machine":  map[string]string{"cpu": harness.CPUModel(), "cpus": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version()},
		"requests": n, "request": request, "runs": runs, "results": results, "ratios": ratios, "instructions_per_added_field": perField,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(o.out, append(b, '\n'), 0o644)
}

var callgrindTotal = regexp.MustCompile(`(?m)^(?:summary|totals): (\d+)`)

// warmUpRequests go to each target before its count. The Go runtime's
// cache of a type assertion to an interface learns a type only about once
// in a thousand misses (runtime.typeAssert), each miss costing a few
// hundred instructions: fewer warm-up requests left a call site unlearnt
// at random, which moved a 2,000-request count by up to 500 instructions
// per request between runs of one build.
const warmUpRequests = 4000

// countInstructions starts t under callgrind, warms it up, counts the
// instructions of n requests and stops it. It returns them per request,
// in all and without the Go runtime's search for work.
func countInstructions(valgrind, control, dir string, t instrTarget, n int) (perRequest, withoutSearch float64, err error) {
	out := filepath.Join(dir, "callgrind."+t.name)
	old, _ := filepath.Glob(out + "*")
	for _, f := range old {
		os.Remove(f)
	}
	cmd := exec.Command(valgrind, append([]string{"--tool=callgrind", "--callgrind-out-file=" + out}, t.argv...)...)
	cmd.Env = append(os.Environ(), t.env...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := harness.WaitHTTP(ctx, t.ready); err != nil {
		return 0, 0, fmt.Errorf("not ready under callgrind: %w\n%s", err, tail(stderr.String(), 2000))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: t.bare}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	send := func(k int) error {
		for range k {
			req, err := http.NewRequest("GET", t.url, nil)
			if err != nil {
				return err
			}
			if t.bare {
				req.Header.Set("User-Agent", "") // Go's client then sends none
			}
			for h, v := range t.headers {
				req.Header.Set(h, v)
			}
			res, err := client.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", res.StatusCode)
			}
		}
		return nil
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if err := send(warmUpRequests); err != nil {
		return 0, 0, err
	}
	if b, err := exec.Command(control, "--zero", pid).CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("callgrind_control --zero: %v: %s", err, b)
	}
	if err := send(n); err != nil {
		return 0, 0, err
	}
	if b, err := exec.Command(control, "--dump", pid).CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("callgrind_control --dump: %v: %s", err, b)
	}
	// callgrind_control --dump writes the counts since the zeroing to
	// out.1; out itself is written at exit, which the killed process
	// never reaches.
	files, _ := filepath.Glob(out + "*")
	var total, search float64
	for _, f := range files {
		if f == out {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, 0, err
		}
		if m := callgrindTotal.FindSubmatch(b); m != nil {
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			total += v
		}
		costs, err := callgrind.SelfCosts(bytes.NewReader(b))
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", f, err)
		}
		search += float64(callgrind.SearchCost(costs))
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("no callgrind dump found (%v)", files)
	}
	return total / float64(n), (total - search) / float64(n), nil
}

// keepDump copies target name's callgrind dump of the counted requests
// (the last run's) to dir as callgrind.NAME.out, for bench/cgtop.
func keepDump(tmp, dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(tmp, "callgrind."+name+".1"))
	if err != nil {
		return fmt.Errorf("keeping the callgrind dump: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "callgrind."+name+".out"), b, 0o644)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
