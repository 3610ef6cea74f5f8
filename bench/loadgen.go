package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadgen drives one scenario for a duration with a number of connections.
type loadgen interface {
	name() string
	run(ctx context.Context, s scenario, conns int, d time.Duration) (sample, error)
}

func newLoadgen(which string, pin func(string, ...string) []string) (loadgen, error) {
	wrk, err := exec.LookPath("wrk")
	switch {
	case which == "wrk" && err != nil:
		return nil, errors.New("wrk is not installed")
	case which == "wrk" || (which == "auto" && err == nil):
		return &wrkGen{path: wrk, pin: pin}, nil
	case which == "go" || which == "auto":
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return &goGen{self: self, pin: pin}, nil
	}
	return nil, fmt.Errorf("unknown load generator %q", which)
}

type wrkGen struct {
	path string
	pin  func(string, ...string) []string
}

func (w *wrkGen) name() string {
	out, _ := exec.Command(w.path, "-v").CombinedOutput()
	if f := strings.Fields(string(out)); len(f) >= 2 {
		return "wrk " + f[1]
	}
	return "wrk"
}

var (
	wrkRPS  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct  = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrs = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func (w *wrkGen) run(ctx context.Context, s scenario, conns int, d time.Duration) (sample, error) {
	args := []string{w.path, "-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency"}
	for k, v := range s.Headers {
		args = append(args, "-H", k+": "+v)
	}
	args = append(args, s.URL)
	argv := w.pin("1", args...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (sample, error) {
	var s sample
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return s, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
	}
	s.RPS, _ = strconv.ParseFloat(m[1], 64)
	for _, p := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		switch p[3] {
		case "ms":
			v *= 1000
		case "s":
			v *= 1e6
		}
		if p[1] == "50" {
			s.P50us = v
		} else {
			s.P99us = v
		}
	}
	for _, e := range wrkErrs.FindAllStringSubmatch(out, -1) {
		for _, n := range e[1:] {
			if v, err := strconv.Atoi(n); err == nil {
				s.Errs += v
			}
		}
	}
	return s, nil
}

// goGen runs this program's own load generator in a pinned subprocess.
type goGen struct {
	self string
	pin  func(string, ...string) []string
}

func (g *goGen) name() string { return "built-in Go load generator" }

func (g *goGen) run(ctx context.Context, s scenario, conns int, d time.Duration) (sample, error) {
	args := []string{g.self, "loadgen", "-url", s.URL, "-c", strconv.Itoa(conns), "-d", d.String()}
	for k, v := range s.Headers {
		args = append(args, "-H", k+": "+v)
	}
	argv := g.pin("1", args...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		return sample{}, fmt.Errorf("loadgen: %v", err)
	}
	var res sample
	return res, json.Unmarshal(out, &res)
}

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// loadgenMain is the closed-loop load generator: conns connections, each
// sending the next request as soon as the previous response is read.
func loadgenMain(args []string) int {
	fs := flag.NewFlagSet("loadgen", flag.ExitOnError)
	url := fs.String("url", "", "URL")
	conns := fs.Int("c", 64, "connections")
	dur := fs.Duration("d", 10*time.Second, "duration")
	var headers headerFlags
	fs.Var(&headers, "H", "header")
	fs.Parse(args)
	tr := &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DialContext: (&net.Dialer{}).DialContext}
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1<<16)
			localErrs := 0
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", *url, nil)
				for _, h := range headers {
					k, v, _ := strings.Cut(h, ":")
					req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
				}
				t0 := time.Now()
				res, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						localErrs++
					}
					continue
				}
				br := bufio.NewReader(res.Body)
				_, _ = br.WriteTo(discard{})
				res.Body.Close()
				if res.StatusCode != 200 {
					localErrs++
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += localErrs
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds())
	}
	out, _ := json.Marshal(sample{RPS: float64(len(lat)) / dur.Seconds(), P50us: pct(0.50), P99us: pct(0.99), Errs: errs})
	fmt.Println(string(out))
	return 0
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
