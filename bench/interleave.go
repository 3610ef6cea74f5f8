package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The interleaved one-connection measurement: one keep-alive connection
// to each scenario, one request at a time, the scenarios taken in turn.
// The per-round one-connection runs measure each scenario for a few
// seconds on its own, and on a shared machine the latency moves by more
// between those seconds than the difference between two proxies (the
// same binary's p50 moved by ±15 µs between rounds in the sessions of
// 2026-11-27). Taken in turn, the scenarios see the same machine within
// a cycle of a few hundred microseconds, and the median over the cycles
// of one scenario's latency minus another's (a paired difference) is a
// figure that such a machine disturbs far less. Between two requests of
// a scenario the others run, so every proxy starts each request with
// colder caches than in a one-connection run of its own.

// interleaveTarget is one scenario as the interleaving client sends it.
type interleaveTarget struct {
	Name    string            `json:"name"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

// interleaved is what the interleaving client measured.
type interleaved struct {
	Duration string `json:"duration"`
	// Cycles is how many times every scenario answered in turn; only
	// those cycles count.
	Cycles int `json:"cycles"`
	// P50us and P99us are each scenario's latency percentiles over the
	// cycles, in microseconds (the client's own time included, the same
	// for every scenario).
	P50us map[string]float64 `json:"p50_us"`
	P99us map[string]float64 `json:"p99_us"`
	// Errors counts failed requests (a status other than 200, a broken
	// connection) per scenario; a cycle with one is not counted.
	Errors map[string]int `json:"errors"`
	// GapUs[a][b] is the median over the cycles of a's latency minus b's,
	// in microseconds: below zero, a answered faster.
	GapUs map[string]map[string]float64 `json:"paired_median_gap_us"`
}

// runInterleaved runs the interleaving client (this program's
// "interleave" command, pinned to the load generator's CPU) over
// scenarios for d.
func runInterleaved(ctx context.Context, self string, pin func(string, ...string) []string, scenarios []scenario, d time.Duration) (*interleaved, error) {
	ts := make([]interleaveTarget, len(scenarios))
	for i, s := range scenarios {
		ts[i] = interleaveTarget{Name: s.Name, URL: s.URL, Headers: s.Headers}
	}
	spec, _ := json.Marshal(ts)
	argv := pin("1", self, "interleave", "-d", d.String(), "-targets", string(spec))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("interleave: %v", err)
	}
	var res interleaved
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("interleave: %v", err)
	}
	return &res, nil
}

// interleaveConn is the client's connection to one scenario.
type interleaveConn struct {
	addr string
	req  []byte // the raw request, as wrk sends it: Host and the scenario's fields
	c    net.Conn
	br   *bufio.Reader
}

func newInterleaveConn(t interleaveTarget) (*interleaveConn, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s: only http:// URLs", t.URL)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", u.RequestURI(), u.Host)
	names := make([]string, 0, len(t.Headers))
	for k := range t.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "%s: %s\r\n", k, t.Headers[k])
	}
	b.WriteString("\r\n")
	return &interleaveConn{addr: u.Host, req: []byte(b.String())}, nil
}

// do sends the request and reads the whole response, dialing first when
// the connection is not open; it reports the time from the write to the
// response's last byte.
func (c *interleaveConn) do(deadline time.Time) (time.Duration, error) {
	if c.c == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		c.c, c.br = conn, bufio.NewReaderSize(conn, 16<<10)
	}
	c.c.SetDeadline(deadline)
	t0 := time.Now()
	_, err := c.c.Write(c.req)
	var status int
	var closeAfter bool
	if err == nil {
		status, closeAfter, err = c.readResponse()
	}
	lat := time.Since(t0)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("status %d", status)
	}
	if err != nil || closeAfter {
		c.close()
	}
	if err != nil {
		return 0, err
	}
	return lat, nil
}

// readResponse reads one response to a GET: its status line, its fields,
// of which only Content-Length, Transfer-Encoding and Connection are
// looked at, and a body of Content-Length bytes. A body of another
// framing is refused: no scenario sends one. It does as little as a
// client can, as wrk does, so that the latencies are the servers' (Go's
// http.ReadResponse would put each response field in a map, a cost that
// grows with the fields a scenario returns).
func (c *interleaveConn) readResponse() (status int, closeAfter bool, err error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("invalid status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, fmt.Errorf("invalid status line %q", line)
	}
	length := -1
	for {
		if line, err = c.br.ReadSlice('\n'); err != nil {
			return 0, false, err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("invalid field line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, fmt.Errorf("invalid Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, false, fmt.Errorf("a response with Transfer-Encoding %q: only Content-Length is read", value)
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = closeAfter || bytes.EqualFold(value, []byte("close"))
		}
	}
	if length < 0 {
		return 0, false, errors.New("a response without Content-Length: only Content-Length is read")
	}
	_, err = c.br.Discard(length)
	return status, closeAfter, err
}

func (c *interleaveConn) close() {
	if c.c != nil {
		c.c.Close()
		c.c, c.br = nil, nil
	}
}

// interleaveMain is the "interleave" command: it measures the targets
// given as JSON (-targets) in turn for -d and prints an interleaved
// result as JSON.
func interleaveMain(args []string) int {
	fs := flag.NewFlagSet("interleave", flag.ExitOnError)
	dur := fs.Duration("d", 10*time.Second, "duration")
	spec := fs.String("targets", "", "the targets, as a JSON array of {name, url, headers}")
	fs.Parse(args)
	var ts []interleaveTarget
	if err := json.Unmarshal([]byte(*spec), &ts); err != nil || len(ts) == 0 {
		fmt.Fprintln(os.Stderr, "interleave: -targets: a JSON array of at least one {name, url, headers} is needed:", err)
		return 2
	}
	res, err := measureInterleaved(ts, *dur)
	if err != nil {
		fmt.Fprintln(os.Stderr, "interleave:", err)
		return 1
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	return 0
}

// measureInterleaved measures ts in turn for dur.
func measureInterleaved(ts []interleaveTarget, dur time.Duration) (*interleaved, error) {
	conns := make([]*interleaveConn, len(ts))
	for i, t := range ts {
		c, err := newInterleaveConn(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		conns[i] = c
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	lat := make([][]time.Duration, len(ts)) // per target, per counted cycle
	errs := make([]int, len(ts))
	cycle := make([]time.Duration, len(ts))
	// Each cycle takes the targets in an order of its own: what ran just
	// before a request weighs on its latency (a Go proxy measured 5–6
	// µs faster after another Go proxy than after nginx, whichever of
	// two builds it was), so every target must follow every other alike.
	order := make([]int, len(ts))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(1, 2))
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		ok := true
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, i := range order {
			d, err := conns[i].do(time.Now().Add(5 * time.Second))
			if err != nil {
				errs[i]++
				ok = false
				if errors.Is(err, os.ErrDeadlineExceeded) || errs[i] > 1000 {
					return nil, fmt.Errorf("%s: %w (%d errors)", ts[i].Name, err, errs[i])
				}
				continue
			}
			cycle[i] = d
		}
		if ok {
			for i := range ts {
				lat[i] = append(lat[i], cycle[i])
			}
		}
	}
	res := summarizeInterleaved(ts, lat, errs)
	res.Duration = dur.String()
	return res, nil
}

// summarizeInterleaved computes the percentiles and paired gaps of
// latencies measured in cycles: lat[i][n] is target i's latency in the
// n-th counted cycle.
func summarizeInterleaved(ts []interleaveTarget, lat [][]time.Duration, errs []int) *interleaved {
	res := &interleaved{P50us: map[string]float64{}, P99us: map[string]float64{}, Errors: map[string]int{}, GapUs: map[string]map[string]float64{}}
	if len(lat) > 0 {
		res.Cycles = len(lat[0])
	}
	pct := func(v []float64, p float64) float64 {
		if len(v) == 0 {
			return 0
		}
		return v[int(p*float64(len(v)-1)+0.5)]
	}
	micros := func(ds []time.Duration) []float64 {
		v := make([]float64, len(ds))
		for i, d := range ds {
			v[i] = float64(d.Nanoseconds()) / 1000
		}
		return v
	}
	for i, t := range ts {
		v := micros(lat[i])
		slices.Sort(v)
		res.P50us[t.Name], res.P99us[t.Name] = pct(v, 0.50), pct(v, 0.99)
		res.Errors[t.Name] = errs[i]
	}
	for i, a := range ts {
		res.GapUs[a.Name] = map[string]float64{}
		for j, b := range ts {
			if i == j {
				continue
			}
			diff := make([]float64, len(lat[i]))
			for n := range diff {
				diff[n] = float64((lat[i][n] - lat[j][n]).Nanoseconds()) / 1000
			}
			slices.Sort(diff)
			res.GapUs[a.Name][b.Name] = pct(diff, 0.50)
		}
	}
	return res
}
