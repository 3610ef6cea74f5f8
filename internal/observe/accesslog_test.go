package observe

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func sampleAccess() *Access {
	return &Access{
		Time: time.Date(2026, 11, 25, 18, 30, 42, 609000000, time.UTC), RequestID: "4440961c", TraceID: "4bf92f35",
		API: "orders", Operation: "getOrder", Method: "GET", Path: "/orders/42", Status: 200,
		Duration: 412 * time.Microsecond, UpstreamDuration: 301 * time.Microsecond, Upstream: "http://10.0.1.10:8080",
		Attempts: 1, BytesOut: 456, ClientIP: netip.MustParseAddr("203.0.113.9"), Subject: "reader", Credential: "jwt",
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The fast JSON line says exactly what the slog JSON handler says, key for
// key, so the documented format holds whichever writes it.
func TestJSONAccessLog_MatchesSlog(t *testing.T) {
	for _, a := range []*Access{sampleAccess(), {
		Time: time.Unix(0, 0).UTC(), Method: "GET", Path: "(rejected)", Status: 400, Denial: "bad_path",
		Error: errors.New("bad \"quote\"\n\x01 and \xff"), Consumer: "acme",
	}} {
		var viaSlog bytes.Buffer
		NewAccessLog(slog.New(slog.NewJSONHandler(&viaSlog, nil))).Log(a)
		var fast syncBuf
		l := NewJSONAccessLog(&fast, time.Hour)
		l.Log(a)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		var want, got map[string]any
		if err := json.Unmarshal(viaSlog.Bytes(), &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(fast.String()), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, fast.String())
		}
		// slog stamps its own time; compare the rest.
		delete(want, "time")
		delete(got, "time")
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if string(wb) != string(gb) {
			t.Errorf("fields differ\nslog: %s\nfast: %s", wb, gb)
		}
		if !strings.HasSuffix(fast.String(), "}\n") || strings.Count(fast.String(), "\n") != 1 {
			t.Errorf("not one line: %q", fast.String())
		}
	}
}

func TestJSONAccessLog_BuffersAndFlushes(t *testing.T) {
	var out syncBuf
	l := NewJSONAccessLog(&out, 20*time.Millisecond)
	l.Log(sampleAccess())
	for range 100 {
		if strings.Contains(out.String(), `"request_id":"4440961c"`) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out.String(), `"request_id":"4440961c"`) {
		t.Fatal("a buffered line was not flushed by the timer")
	}
	l.Log(sampleAccess())
	l.Close()
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Fatalf("%d lines after Close, want 2", n)
	}
	l.Log(sampleAccess()) // after Close: dropped, no panic
}

func TestJSONAccessLog_DoesNotAllocate(t *testing.T) {
	l := NewJSONAccessLog(io.Discard, time.Hour)
	defer l.Close()
	a := sampleAccess()
	l.Log(a) // warm the pool
	if n := testing.AllocsPerRun(1000, func() { l.Log(a) }); n != 0 {
		t.Fatalf("%v allocations per line, want 0", n)
	}
}

// BenchmarkAccessLog compares the slog JSON handler with the fast writer
// in the same run (both writing to io.Discard, so no system call counts).
func BenchmarkAccessLog(b *testing.B) {
	a := sampleAccess()
	b.Run("slog", func(b *testing.B) {
		l := NewAccessLog(slog.New(slog.NewJSONHandler(io.Discard, nil)))
		b.ReportAllocs()
		for b.Loop() {
			l.Log(a)
		}
	})
	b.Run("fast", func(b *testing.B) {
		l := NewJSONAccessLog(io.Discard, time.Hour)
		defer l.Close()
		b.ReportAllocs()
		for b.Loop() {
			l.Log(a)
		}
	})
}

// The access line's timestamp is what time.RFC3339Nano makes of it, in
// every zone, across seconds, with and without a fraction.
func TestAppendRFC3339Nano(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	west := time.FixedZone("west", -7*3600)
	base := time.Date(2026, 11, 26, 23, 59, 58, 0, time.UTC)
	var times []time.Time
	for _, ns := range []int64{0, 1, 10, 999, 1000, 120000000, 500000000, 999999999, 1000000000, 1000000001, 1500000000, 2000000000} {
		for _, loc := range []*time.Location{time.UTC, east, west, time.Local} {
			times = append(times, base.Add(time.Duration(ns)).In(loc))
		}
	}
	times = append(times, time.Now(), time.Now().UTC(), time.Unix(0, 0), time.Time{},
		time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, west))
	for i := 0; i < 2000; i++ {
		times = append(times, base.Add(time.Duration(i)*7919*time.Microsecond+time.Duration(i*i)))
	}
	for _, tm := range times {
		got := string(appendRFC3339Nano([]byte("x"), tm))
		want := "x" + tm.Format(time.RFC3339Nano)
		if got != want {
			t.Errorf("%v: got %q, want %q", tm, got, want)
		}
	}
}

// A duration in milliseconds is written as strconv would write the float.
func TestAppendMillis(t *testing.T) {
	ds := []time.Duration{0, time.Microsecond, 999 * time.Nanosecond, 10 * time.Microsecond, time.Millisecond,
		1200 * time.Microsecond, 1230 * time.Microsecond, 1234 * time.Microsecond, 412 * time.Microsecond,
		time.Hour, -1234 * time.Microsecond, -time.Millisecond, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for i := int64(0); i < 100000; i++ {
		ds = append(ds, time.Duration(i*i*7919+i)*time.Nanosecond)
	}
	for _, d := range ds {
		got := string(appendMillis(nil, `,"k":`, d))
		want := `,"k":` + strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', -1, 64)
		if got != want {
			t.Fatalf("%v: got %s, want %s", d, got, want)
		}
	}
}

// A flush that the output takes only part of (a full disk) breaks one
// line at most: the next flush ends it before writing, so every line after
// it is whole JSON on its own line.
func TestJSONAccessLog_PartialWriteBreaksOneLineAtMost(t *testing.T) {
	size := len(appendAccess(nil, &Access{RequestID: "a1", Status: 200}))
	pw := &partialWriter{room: size + size/2} // the second line cut in half
	l := NewJSONAccessLog(pw, time.Hour)
	for _, id := range []string{"a1", "a2", "a3"} {
		l.Log(&Access{RequestID: id, Status: 200})
	}
	if err := l.sink.flushNow(); err == nil {
		t.Fatal("a partial write reported no error")
	}
	pw.mu.Lock()
	pw.room = -1 // room again
	pw.mu.Unlock()
	for _, id := range []string{"b1", "b2"} {
		l.Log(&Access{RequestID: id, Status: 200})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(pw.String(), "\n"), "\n")
	var whole []string
	broken := 0
	for _, line := range lines {
		var v struct {
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &v) != nil {
			broken++
			continue
		}
		whole = append(whole, v.RequestID)
	}
	if broken != 1 || strings.Join(whole, ",") != "a1,b1,b2" {
		t.Fatalf("whole lines %v, %d broken, want a1,b1,b2 and 1 broken (a2 cut off; a3 dropped):\n%s", whole, broken, pw.String())
	}
	if got := l.WriteErrors(); got != 1 {
		t.Fatalf("WriteErrors = %d, want 1", got)
	}
}

// partialWriter takes up to room bytes (-1: any number), then fails, as a
// file on a full disk does (ENOSPC).
type partialWriter struct {
	mu   sync.Mutex
	room int
	bytes.Buffer
}

func (w *partialWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.room < 0 || len(p) <= w.room {
		if w.room >= 0 {
			w.room -= len(p)
		}
		return w.Buffer.Write(p)
	}
	n, _ := w.Buffer.Write(p[:w.room])
	w.room = 0
	return n, errors.New("no space left on device")
}

func (w *partialWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.Buffer.String() }
