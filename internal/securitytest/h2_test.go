package securitytest_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/gatehouse-dev/gatehouse/internal/securitytest"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// h2Client is a normal HTTP/2 client of the gateway's TLS listener.
func (e *env) h2Client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   securitytest.TLSClientConfig(e.pool, "h2"),
		ForceAttemptHTTP2: true,
	}}
}

// normalGet checks that a normal client is served.
func (e *env) normalGet(t testing.TB, c *http.Client) {
	t.Helper()
	res, err := c.Get("https://" + e.gw.TLSAddr + "/normal")
	if err != nil {
		t.Fatalf("a normal client was not served: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 {
		t.Fatalf("a normal client got %d over HTTP/%d", res.StatusCode, res.ProtoMajor)
	}
}

// sampler records the highest goroutine count and heap in use while an
// attack runs.
type sampler struct {
	maxG    atomic.Int64
	maxHeap atomic.Uint64
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startSampler() *sampler {
	s := &sampler{stop: make(chan struct{})}
	s.wg.Go(func() {
		var ms runtime.MemStats
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if g := int64(runtime.NumGoroutine()); g > s.maxG.Load() {
				s.maxG.Store(g)
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > s.maxHeap.Load() {
				s.maxHeap.Store(ms.HeapInuse)
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	})
	return s
}

func (s *sampler) done() (maxGoroutines int, maxHeap uint64) {
	close(s.stop)
	s.wg.Wait()
	return int(s.maxG.Load()), s.maxHeap.Load()
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Threat: HTTP/2 rapid reset (CVE-2023-44487). A client opens streams and
// cancels each at once, so that the server starts work (here: a request
// to the backend) for every one while the client's concurrency limit
// never counts them. The gateway must keep goroutines and memory bounded
// and keep serving normal clients.
func TestHTTP2_RapidResetIsBounded(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.be.SetDelay(20 * time.Millisecond)
	normal := e.h2Client()
	e.normalGet(t, normal)
	baseG, baseHeap := runtime.NumGoroutine(), heapInuse()
	c, err := securitytest.DialH2(e.gw.TLSAddr, securitytest.TLSClientConfig(e.pool))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := startSampler()
	const streams = 20000
	sent := 0
	block := c.Block(":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/rapid")
	for i := 0; i < streams && !c.Ended(); i++ {
		id := uint32(2*i + 1)
		err := c.Write(func(fr *http2.Framer) error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
				return err
			}
			return fr.WriteRSTStream(id, http2.ErrCodeCancel)
		})
		if err != nil {
			break
		}
		sent++
	}
	e.normalGet(t, normal) // served during the attack
	ended := c.WaitEnded(2 * time.Second)
	maxG, maxHeap := s.done()
	forwarded := len(e.be.Requests())
	goaway := c.GoAway()
	t.Logf("FIGURE rapid reset: %d streams opened and reset, %d reached the backend, goroutines +%d at most, heap +%d KiB at most, GOAWAY %v, connection closed %v",
		sent, forwarded, maxG-baseG, (int64(maxHeap)-int64(baseHeap))/1024, goaway != nil, ended)
	if limit := 6*server.HTTP2MaxConcurrentStreams + 100; maxG-baseG > limit {
		t.Errorf("goroutines grew by %d during the attack, more than %d", maxG-baseG, limit)
	}
	if grow := int64(maxHeap) - int64(baseHeap); grow > 64<<20 {
		t.Errorf("heap grew by %d MiB during the attack", grow>>20)
	}
	e.normalGet(t, normal) // and after it
	c.Close()
	securitytest.WaitGoroutines(t, baseG, 20, 10*time.Second)
}

// Threat: CONTINUATION flood (CVE-2024-27316 pattern, CVE-2023-45288 in
// Go). A client sends one HEADERS frame without END_HEADERS and then
// CONTINUATION frames forever, so the server buffers or decodes an
// unbounded header block. The gateway must close the connection once the
// block passes max_header_bytes, with memory bounded.
func TestHTTP2_ContinuationFloodIsCut(t *testing.T) {
	e := newEnv(t, envOptions{MaxHeaderBytes: "8KiB"})
	normal := e.h2Client()
	e.normalGet(t, normal)
	c, err := securitytest.DialH2(e.gw.TLSAddr, securitytest.TLSClientConfig(e.pool))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One header block: the request's pseudo-headers, then as many
	// literal fields as the attacker likes (built before measuring).
	fields := []string{":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/flood"}
	for i := range 20000 {
		fields = append(fields, fmt.Sprintf("x-flood-%d", i), strings.Repeat("v", 900))
	}
	var block []byte
	_ = c.Write(func(*http2.Framer) error { block = c.Block(fields...); return nil })
	fields = nil
	baseG, baseHeap := runtime.NumGoroutine(), heapInuse()
	s := startSampler()
	const frame = 16 << 10
	var sentBytes int
	err = c.Write(func(fr *http2.Framer) error {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:frame], EndHeaders: false}); err != nil {
			return err
		}
		sentBytes = frame
		for off := frame; off < len(block); off += frame {
			end := min(off+frame, len(block))
			if err := fr.WriteContinuation(1, end == len(block), block[off:end]); err != nil {
				return err
			}
			sentBytes = end
			if c.Ended() {
				return io.EOF
			}
		}
		return nil
	})
	ended := c.WaitEnded(5 * time.Second)
	maxG, maxHeap := s.done()
	t.Logf("FIGURE continuation flood: block of %d KiB offered, %d KiB written before the server stopped reading, GOAWAY %v, connection closed %v, goroutines +%d, heap +%d KiB",
		len(block)>>10, sentBytes>>10, c.GoAway() != nil, ended, maxG-baseG, (int64(maxHeap)-int64(baseHeap))/1024)
	if !ended {
		t.Fatal("the connection is still open after an endless header block")
	}
	if st := c.Status(1); st != 0 && st != 431 && st != 400 {
		t.Errorf("the flooded stream got status %d", st)
	}
	for _, r := range e.be.Requests() {
		if r.Target == "/flood" {
			t.Error("the flooded request reached the backend")
		}
	}
	if grow := int64(maxHeap) - int64(baseHeap); grow > 32<<20 {
		t.Errorf("heap grew by %d MiB", grow>>20)
	}
	e.normalGet(t, normal)
	c.Close()
	securitytest.WaitGoroutines(t, baseG, 20, 10*time.Second)
}

// Threat: an HTTP/2 request whose content-length disagrees with its DATA
// frames (RFC 9113 §8.1.1: malformed). Forwarded as is, a backend reading
// HTTP/1.1 would frame it by the declared length and read the rest as
// another request. The backend must never receive it whole.
func TestHTTP2_ContentLengthMismatchIsNotForwarded(t *testing.T) {
	e := newEnv(t, envOptions{})
	cases := []struct {
		name string
		cl   string
		data []string
	}{
		{"data_shorter_than_cl", "40", []string{"hello"}},
		{"data_longer_than_cl", "5", []string{"hello", smuggled}},
		{"cl_zero_with_data", "0", []string{smuggled}},
		{"two_cl_values", "5, 41", []string{"hello"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.reset()
			c, err := securitytest.DialH2(e.gw.TLSAddr, securitytest.TLSClientConfig(e.pool))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Write(func(fr *http2.Framer) error {
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
					BlockFragment: c.Block(":method", "POST", ":scheme", "https", ":authority", "x", ":path", "/upload", "content-length", tc.cl)}); err != nil {
					return err
				}
				for i, d := range tc.data {
					if i > 0 {
						// Let the gateway forward what it has before the
						// frame that makes the request malformed arrives.
						time.Sleep(50 * time.Millisecond)
					}
					if err := fr.WriteData(1, i == len(tc.data)-1, []byte(d)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				if _, reset := c.Reset(1); reset || c.Status(1) != 0 || c.Ended() {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // let a forwarded request land
			code, reset := c.Reset(1)
			t.Logf("status %d, reset %v (%v), backend got %d complete requests, %d cut off", c.Status(1), reset, code, len(e.be.Requests()), e.be.Truncated())
			if st := c.Status(1); st == 200 {
				t.Errorf("the malformed request was answered 200")
			}
			if n := len(e.be.Requests()); n != 0 {
				t.Errorf("the backend received %d complete requests: %+v", n, e.be.Requests())
			}
		})
	}
}
