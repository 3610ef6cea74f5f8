package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSummarizeInterleaved: the paired gap is the median of the per-cycle
// differences, so a drift that moves every scenario alike (the machine
// slowing down between cycles) leaves it exact, where it moves each
// scenario's own percentiles.
func TestSummarizeInterleaved(t *testing.T) {
	ts := []interleaveTarget{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	lat := make([][]time.Duration, 3)
	for n := range 101 {
		drift := time.Duration(n%10) * 40 * time.Microsecond // 0–360 µs, far more than the gaps
		lat[0] = append(lat[0], 100*time.Microsecond+drift)
		lat[1] = append(lat[1], 107*time.Microsecond+drift)
		c := 90 * time.Microsecond // c: 10 µs faster than a, once in ten cycles 1 ms slower
		if n%10 == 3 {
			c = 1100 * time.Microsecond
		}
		lat[2] = append(lat[2], c+drift)
	}
	res := summarizeInterleaved(ts, lat, []int{0, 2, 0})
	if res.Cycles != 101 || res.Errors["b"] != 2 {
		t.Errorf("cycles %d, errors %v", res.Cycles, res.Errors)
	}
	for _, w := range []struct {
		a, b string
		gap  float64
	}{{"b", "a", 7}, {"a", "b", -7}, {"c", "a", -10}, {"a", "c", 10}, {"b", "c", 17}} {
		if got := res.GapUs[w.a][w.b]; got != w.gap {
			t.Errorf("gap %s−%s = %v µs, want %v", w.a, w.b, got, w.gap)
		}
	}
	if got := res.P50us["a"]; got != 260 {
		t.Errorf("a's p50 = %v µs, want 260", got)
	}
	if res.P99us["c"] < 1100 {
		t.Errorf("c's p99 = %v µs: its slow cycles are not in it", res.P99us["c"])
	}
}

// TestInterleavedRatios: the target is judged on the difference of the
// p50s, and the paired gaps are reported beside it.
func TestInterleavedRatios(t *testing.T) {
	for _, tc := range []struct {
		pass float64
		want string
	}{{170, "met"}, {171, "NOT met"}} {
		rep := &report{Ratios: map[string]float64{}, Targets: map[string]string{}, Interleaved: &interleaved{
			Cycles: 10,
			P50us:  map[string]float64{"direct": 120, "nginx": 170, "gatehouse-passthrough": tc.pass, "gatehouse-full-chain": 180},
			GapUs: map[string]map[string]float64{
				"gatehouse-passthrough": {"nginx": tc.pass - 170.5},
				"gatehouse-full-chain":  {"gatehouse-passthrough": 9},
			},
		}}
		interleavedRatios(rep)
		if got := rep.Targets["1-conn added p50 <= nginx's (interleaved)"]; got != tc.want {
			t.Errorf("passthrough p50 %v, nginx 170: %q, want %q", tc.pass, got, tc.want)
		}
		for k, want := range map[string]float64{
			"passthrough_added_p50_us_1conn_interleaved":                    tc.pass - 120,
			"nginx_added_p50_us_1conn_interleaved":                          50,
			"full_chain_added_p50_us_1conn_interleaved":                     60,
			"p50_gap_vs_nginx_us_1conn_interleaved":                         tc.pass - 170,
			"p50_gap_vs_nginx_us_1conn_interleaved_paired":                  tc.pass - 170.5,
			"full_chain_p50_gap_vs_passthrough_us_1conn_interleaved_paired": 9,
		} {
			if got, ok := rep.Ratios[k]; !ok || got != want {
				t.Errorf("%s = %v (%v), want %v", k, got, ok, want)
			}
		}
	}
}

// TestMeasureInterleaved runs the client against two loopback servers,
// one of which takes 2 ms longer to answer, and one that refuses.
func TestMeasureInterleaved(t *testing.T) {
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "t" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer fast.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	defer slow.Close()
	res, err := measureInterleaved([]interleaveTarget{
		{Name: "fast", URL: fast.URL + "/x?y=1", Headers: map[string]string{"X-Token": "t"}},
		{Name: "slow", URL: slow.URL + "/"},
	}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cycles < 10 || res.Errors["fast"] != 0 || res.Errors["slow"] != 0 {
		t.Fatalf("%d cycles, errors %v", res.Cycles, res.Errors)
	}
	if g := res.GapUs["slow"]["fast"]; g < 1900 {
		t.Errorf("slow − fast: %v µs, want at least 1900 (the 2 ms sleep)", g)
	}
	if res.P50us["slow"] < 2000 || res.P50us["fast"] >= res.P50us["slow"] {
		t.Errorf("p50s %v", res.P50us)
	}

	// A refusal counts as an error, and its cycle is not counted.
	res, err = measureInterleaved([]interleaveTarget{{Name: "no token", URL: fast.URL + "/"}, {Name: "slow", URL: slow.URL + "/"}}, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cycles != 0 || res.Errors["no token"] == 0 {
		t.Errorf("%d cycles, errors %v", res.Cycles, res.Errors)
	}
}

// TestInterleaveReadResponse: the client reads a response's status,
// Content-Length and Connection, and refuses a framing it does not read.
func TestInterleaveReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in  string
		status    int
		close     bool
		left, err string
	}{
		{name: "length", in: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 5\r\nX-A: b:c\r\n\r\nhelloNEXT", status: 200, left: "NEXT"},
		{name: "empty", in: "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\nNEXT", status: 401, left: "NEXT"},
		{name: "close", in: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", status: 200, close: true},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", err: "Transfer-Encoding"},
		{name: "no length", in: "HTTP/1.1 200 OK\r\n\r\nok", err: "without Content-Length"},
		{name: "bad length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: "invalid Content-Length"},
		{name: "bad status", in: "HTTP/1.1 2x0 OK\r\n\r\n", err: "invalid status line"},
		{name: "truncated", in: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", err: "EOF"},
	} {
		c := &interleaveConn{br: bufio.NewReader(strings.NewReader(tc.in))}
		status, closeAfter, err := c.readResponse()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.err)
			}
			continue
		}
		rest, _ := io.ReadAll(c.br)
		if err != nil || status != tc.status || closeAfter != tc.close || string(rest) != tc.left {
			t.Errorf("%s: %d close=%v %v, left %q", tc.name, status, closeAfter, err, rest)
		}
	}
}

// TestMeasureInterleaved_Reconnects: a scenario whose responses close
// the connection is dialed again for its next request.
func TestMeasureInterleaved_Reconnects(t *testing.T) {
	closing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Write([]byte("ok"))
	}))
	defer closing.Close()
	res, err := measureInterleaved([]interleaveTarget{{Name: "closing", URL: closing.URL + "/"}}, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cycles < 5 || res.Errors["closing"] != 0 {
		t.Errorf("%d cycles, errors %v", res.Cycles, res.Errors)
	}
}
