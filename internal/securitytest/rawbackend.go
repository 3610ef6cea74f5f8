package securitytest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Received is one request as a RawBackend parsed it from the bytes of its
// connection.
type Received struct {
	Conn    int    // index of the connection it came on
	Method  string // as on the request line
	Target  string // the request target, exactly as sent
	Proto   string
	Header  http.Header
	Body    []byte
	Raw     []byte // the request line and header block, exactly as sent
	Framing string // "none", "length" or "chunked"
}

// RawBackend is an HTTP/1.1 origin on a raw TCP socket. It keeps every
// byte each connection sent and parses the stream itself, strictly, so a
// test can count the requests that really arrived and check that their
// framing is unambiguous. Each request is answered with 200 and a body
// naming its target; a connection whose bytes do not parse is recorded
// and closed.
type RawBackend struct {
	ln net.Listener

	mu       sync.Mutex
	conns    [][]byte
	requests []Received
	problems []string
	// truncated counts connections that ended inside a request (the
	// gateway gave up forwarding it): not a desynchronization.
	truncated int
	delay     time.Duration
	hold      chan struct{}
	wg        sync.WaitGroup
	closed    bool
	live      map[net.Conn]struct{}
	hanging   int // requests to /hang not yet given up by the gateway
}

// NewRawBackend listens on 127.0.0.1 and serves until Close.
func NewRawBackend() (*RawBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &RawBackend{ln: ln, live: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.accept()
	return b, nil
}

// URL is the backend's base URL.
func (b *RawBackend) URL() string { return "http://" + b.ln.Addr().String() }

// Addr is the backend's host:port.
func (b *RawBackend) Addr() string { return b.ln.Addr().String() }

// SetDelay makes the backend wait d before each response.
func (b *RawBackend) SetDelay(d time.Duration) {
	b.mu.Lock()
	b.delay = d
	b.mu.Unlock()
}

// Close stops the backend and closes every connection.
func (b *RawBackend) Close() {
	b.mu.Lock()
	b.closed = true
	for c := range b.live {
		c.Close()
	}
	b.mu.Unlock()
	b.ln.Close()
	b.wg.Wait()
}

// Requests returns a copy of the requests received so far.
func (b *RawBackend) Requests() []Received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Received(nil), b.requests...)
}

// Problems returns, one line per connection, the ambiguous bytes the
// backend received: anything a lenient parser could read as another
// request (bare LF, obs-fold, CL with TE, duplicate CL, bad chunk sizes).
// Connections that merely ended inside a request are not problems; see
// Truncated.
func (b *RawBackend) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Truncated counts connections that ended inside a request.
// Hanging returns how many requests for /hang the backend holds: it
// answers them never, and holds each until the gateway closes its
// connection.
func (b *RawBackend) Hanging() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hanging
}

func (b *RawBackend) Truncated() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.truncated
}

// Bytes returns everything connection i sent.
func (b *RawBackend) Bytes(i int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.conns[i]...)
}

// Reset forgets what was received.
func (b *RawBackend) Reset() {
	b.mu.Lock()
	b.requests, b.problems, b.truncated = nil, nil, 0
	b.mu.Unlock()
}

func (b *RawBackend) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			c.Close()
			return
		}
		idx := len(b.conns)
		b.conns = append(b.conns, nil)
		b.live[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go b.serve(c, idx)
	}
}

// recordingReader appends what it reads to the connection's record.
type recordingReader struct {
	b   *RawBackend
	idx int
	r   io.Reader
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.b.mu.Lock()
		r.b.conns[r.idx] = append(r.b.conns[r.idx], p[:n]...)
		r.b.mu.Unlock()
	}
	return n, err
}

func (b *RawBackend) serve(c net.Conn, idx int) {
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.live, c)
		b.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(&recordingReader{b: b, idx: idx, r: c})
	for {
		req, err := readStrict(br)
		if err != nil {
			if !errors.Is(err, io.EOF) || req != nil {
				b.mu.Lock()
				if errors.Is(err, errAmbiguous) {
					b.problems = append(b.problems, fmt.Sprintf("conn %d: %v", idx, err))
				} else {
					b.truncated++
				}
				b.mu.Unlock()
			}
			return
		}
		req.Conn = idx
		b.mu.Lock()
		b.requests = append(b.requests, *req)
		delay := b.delay
		b.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay)
		}
		if strings.HasPrefix(req.Target, "/hang") {
			// No answer at all, until the gateway gives up.
			b.mu.Lock()
			b.hanging++
			b.mu.Unlock()
			io.Copy(io.Discard, br)
			b.mu.Lock()
			b.hanging--
			b.mu.Unlock()
			return
		}
		if strings.HasPrefix(req.Target, "/stall") {
			// The head and part of the body, then nothing until the
			// gateway gives up (or the backend closes).
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nten bytes.")
			io.Copy(io.Discard, br)
			return
		}
		body := "backend saw " + req.Target
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", len(body))
		if req.Method != "HEAD" {
			io.WriteString(c, body)
		}
		if strings.EqualFold(req.Header.Get("Connection"), "close") {
			return
		}
	}
}

// errAmbiguous marks bytes that a lenient parser could read differently.
var errAmbiguous = errors.New("ambiguous framing")

// readStrict reads one request. It refuses, as ambiguous, everything
// RFC 9112 lets a recipient interpret in more than one way: bare LF,
// obs-fold, whitespace before a colon, both Content-Length and
// Transfer-Encoding, several Content-Length fields, a Transfer-Encoding
// other than a single "chunked", malformed chunk sizes. It returns io.EOF
// when the connection ends cleanly between requests.
func readStrict(br *bufio.Reader) (*Received, error) {
	var raw bytes.Buffer
	line, err := readCRLFLine(br, &raw)
	if err != nil {
		if raw.Len() == 0 && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return &Received{}, err
	}
	parts := strings.Split(line, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return &Received{}, fmt.Errorf("%w: request line %q", errAmbiguous, line)
	}
	rq := &Received{Method: parts[0], Target: parts[1], Proto: parts[2], Header: http.Header{}}
	for {
		line, err := readCRLFLine(br, &raw)
		if err != nil {
			return rq, err
		}
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return rq, fmt.Errorf("%w: obs-fold", errAmbiguous)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return rq, fmt.Errorf("%w: header line %q", errAmbiguous, line)
		}
		rq.Header.Add(name, strings.Trim(value, " \t"))
	}
	rq.Raw = raw.Bytes()
	cl, te := rq.Header.Values("Content-Length"), rq.Header.Values("Transfer-Encoding")
	switch {
	case len(cl) > 0 && len(te) > 0:
		return rq, fmt.Errorf("%w: both Content-Length and Transfer-Encoding", errAmbiguous)
	case len(cl) > 1:
		return rq, fmt.Errorf("%w: %d Content-Length fields", errAmbiguous, len(cl))
	case len(te) > 1 || len(te) == 1 && te[0] != "chunked":
		return rq, fmt.Errorf("%w: Transfer-Encoding %q", errAmbiguous, te)
	case len(cl) == 1:
		n, err := strconv.ParseUint(cl[0], 10, 31)
		if err != nil {
			return rq, fmt.Errorf("%w: Content-Length %q", errAmbiguous, cl[0])
		}
		rq.Framing = "length"
		rq.Body = make([]byte, n)
		if _, err := io.ReadFull(br, rq.Body); err != nil {
			return rq, fmt.Errorf("body: %w", err)
		}
	case len(te) == 1:
		rq.Framing = "chunked"
		body, err := readChunked(br)
		rq.Body = body
		if err != nil {
			return rq, err
		}
	default:
		rq.Framing = "none"
	}
	return rq, nil
}

// readCRLFLine reads a line that must end in CRLF and has no other CR or LF.
func readCRLFLine(br *bufio.Reader, raw *bytes.Buffer) (string, error) {
	s, err := br.ReadString('\n')
	raw.WriteString(s)
	if err != nil {
		if s == "" {
			return "", err
		}
		return "", fmt.Errorf("truncated line: %w", err)
	}
	if len(s) > 64<<10 {
		return "", fmt.Errorf("%w: line too long", errAmbiguous)
	}
	if len(s) < 2 || s[len(s)-2] != '\r' {
		return "", fmt.Errorf("%w: bare LF", errAmbiguous)
	}
	s = s[:len(s)-2]
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", fmt.Errorf("%w: CR, LF or NUL inside a line", errAmbiguous)
	}
	return s, nil
}

func readChunked(br *bufio.Reader) ([]byte, error) {
	var body []byte
	var scratch bytes.Buffer
	for {
		line, err := readCRLFLine(br, &scratch)
		if err != nil {
			return body, err
		}
		if i := strings.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions are legal; the size is what counts
		}
		n, err := strconv.ParseUint(line, 16, 31)
		if err != nil || line == "" || strings.ContainsAny(line, " +-xX") {
			return body, fmt.Errorf("%w: chunk size %q", errAmbiguous, line)
		}
		if n == 0 {
			for {
				t, err := readCRLFLine(br, &scratch)
				if err != nil {
					return body, err
				}
				if t == "" {
					return body, nil
				}
			}
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return body, err
		}
		body = append(body, chunk...)
		if end, err := readCRLFLine(br, &scratch); err != nil || end != "" {
			return body, fmt.Errorf("%w: chunk not followed by CRLF", errAmbiguous)
		}
	}
}
