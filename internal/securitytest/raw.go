package securitytest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Exchange is what one raw connection to the gateway produced.
type Exchange struct {
	// Responses parsed from what the gateway sent back, in order.
	Responses []*http.Response
	// Bodies of those responses.
	Bodies [][]byte
	// Raw is every byte the gateway sent.
	Raw []byte
	// Trailing holds bytes after the last response that do not parse as
	// one (nil when the stream parsed to the end).
	Trailing error
	// Closed says the gateway closed the connection (as opposed to the
	// read deadline passing while the connection was open).
	Closed bool
}

// SendRaw writes req to addr on a new connection and reads what the
// gateway answers until it closes the connection, until it has been
// silent for idle, or until timeout. The connection is not half-closed:
// Go's server takes a client's EOF as the client going away and cancels
// its requests. Every byte the gateway sends back must parse as a sequence
// of HTTP/1.1 responses; Trailing says why not.
func SendRaw(addr string, req []byte, idle, timeout time.Duration) (*Exchange, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	end := time.Now().Add(timeout)
	_ = c.SetWriteDeadline(end)
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	x := &Exchange{}
	p := make([]byte, 32<<10)
	for {
		d := time.Now().Add(idle)
		if d.After(end) {
			d = end
		}
		_ = c.SetReadDeadline(d)
		n, err := c.Read(p)
		buf.Write(p[:n])
		if err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				x.Closed = true // EOF or reset by the peer
			}
			break
		}
	}
	x.Raw = buf.Bytes()
	x.Responses, x.Bodies, x.Trailing = ParseResponses(x.Raw, req)
	return x, nil
}

// ParseResponses parses raw as consecutive HTTP/1.1 responses. reqs, the
// raw requests, only say whether some responses may be answers to HEAD
// (which have no body whatever their headers say): if reqs holds "HEAD",
// each response is tried both ways and the first reading that parses the
// whole stream wins.
func ParseResponses(raw, reqs []byte) ([]*http.Response, [][]byte, error) {
	p := &respParser{raw: raw, head: bytes.Contains(reqs, []byte("HEAD")), budget: 4096}
	if out, bodies, ok := p.parse(0); ok {
		return out, bodies, nil
	}
	return p.bestOut, p.bestBodies, p.firstErr
}

type respParser struct {
	raw        []byte
	head       bool
	budget     int
	firstErr   error
	bestOut    []*http.Response
	bestBodies [][]byte
}

// parse parses raw[off:] to the end; ok reports success.
func (p *respParser) parse(off int) ([]*http.Response, [][]byte, bool) {
	if off == len(p.raw) {
		return nil, nil, true
	}
	modes := []bool{false}
	if p.head {
		modes = []bool{true, false}
	}
	for _, head := range modes {
		if p.budget--; p.budget < 0 {
			break
		}
		res, body, n, err := parseOne(p.raw[off:], head)
		if err != nil {
			if p.firstErr == nil {
				p.firstErr = err
			}
			continue
		}
		if out, bodies, ok := p.parse(off + n); ok {
			return append([]*http.Response{res}, out...), append([][]byte{body}, bodies...), true
		}
	}
	return nil, nil, false
}

// parseOne parses one response at the start of b and returns how many
// bytes it took.
func parseOne(b []byte, head bool) (*http.Response, []byte, int, error) {
	r := bytes.NewReader(b)
	br := bufio.NewReader(r)
	var req *http.Request
	if head {
		req = &http.Request{Method: "HEAD"}
	}
	res, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("a response does not parse: %w", err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("a response body: %w", err)
	}
	return res, body, len(b) - r.Len() - br.Buffered(), nil
}

// SendRawHalfClose writes req, half-closes the connection (the server
// then finishes what it has and closes), and reads until it does or
// timeout passes; Closed is false on timeout. Go's server cancels the
// requests of a client that half-closed, so a request still in flight
// may go unanswered.
func SendRawHalfClose(addr string, req []byte, timeout time.Duration) (*Exchange, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	var buf bytes.Buffer
	_, rerr := io.Copy(&buf, c)
	x := &Exchange{Raw: buf.Bytes(), Closed: true}
	if ne, ok := rerr.(net.Error); ok && ne.Timeout() {
		x.Closed = false
	}
	x.Responses, x.Bodies, x.Trailing = ParseResponses(x.Raw, req)
	return x, nil
}
