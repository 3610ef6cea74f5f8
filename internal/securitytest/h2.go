package securitytest

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// H2Conn is a raw HTTP/2 client connection over TLS: it sends whatever
// frames a test asks for, valid or not, and a background reader records
// what the server sends back.
type H2Conn struct {
	Conn *tls.Conn
	// Framer reads and writes frames; write only through Write.
	Framer *http2.Framer

	wmu sync.Mutex

	enc  *hpack.Encoder
	hbuf bytes.Buffer

	mu       sync.Mutex
	statuses map[uint32]int // :status of the response on each stream
	resets   map[uint32]http2.ErrCode
	goaway   *http2.GoAwayFrame
	done     chan struct{}
}

// DialH2 connects to addr, negotiates h2 with ALPN, and sends the client
// preface and an empty SETTINGS frame.
func DialH2(addr string, cfg *tls.Config) (*H2Conn, error) {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		conn.Close()
		return nil, fmt.Errorf("ALPN negotiated %q, not h2", p)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		conn.Close()
		return nil, err
	}
	c := &H2Conn{Conn: conn, statuses: map[uint32]int{}, resets: map[uint32]http2.ErrCode{}, done: make(chan struct{})}
	c.Framer = http2.NewFramer(conn, conn)
	c.Framer.ReadMetaHeaders = hpack.NewDecoder(64<<10, nil)
	c.Framer.MaxHeaderListSize = 1 << 20
	c.enc = hpack.NewEncoder(&c.hbuf)
	if err := c.Framer.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30}); err != nil { // before the reader starts
		conn.Close()
		return nil, err
	}
	go c.read()
	return c, nil
}

// Close closes the connection and waits for the reader.
func (c *H2Conn) Close() {
	c.Conn.Close()
	<-c.done
}

// Block encodes header fields (name, value pairs, in order, as given:
// pseudo-headers are not checked) into an HPACK header block. Call it
// only inside Write, or before other writers start.
func (c *H2Conn) Block(fields ...string) []byte {
	c.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return append([]byte(nil), c.hbuf.Bytes()...)
}

// Write runs fn with the framer, serialized with the other writers.
func (c *H2Conn) Write(fn func(fr *http2.Framer) error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return fn(c.Framer)
}

// Request sends HEADERS for a request with the given fields on stream id.
func (c *H2Conn) Request(id uint32, endStream bool, fields ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Framer.WriteHeaders(http2.HeadersFrameParam{
		StreamID: id, BlockFragment: c.Block(fields...), EndStream: endStream, EndHeaders: true,
	})
}

func (c *H2Conn) read() {
	defer close(c.done)
	for {
		f, err := c.Framer.ReadFrame()
		if err != nil {
			return
		}
		c.mu.Lock()
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" {
				if n, err := strconv.Atoi(s); err == nil {
					c.statuses[f.StreamID] = n
				}
			}
		case *http2.RSTStreamFrame:
			c.resets[f.StreamID] = f.ErrCode
		case *http2.GoAwayFrame:
			c.goaway = f
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.mu.Unlock()
				_ = c.Write(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
				c.mu.Lock()
			}
		case *http2.PingFrame:
		}
		c.mu.Unlock()
	}
}

// Status returns the response status of a stream (0 if none yet).
func (c *H2Conn) Status(id uint32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statuses[id]
}

// Reset returns the RST_STREAM code the server sent on a stream, if any.
func (c *H2Conn) Reset(id uint32) (http2.ErrCode, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	code, ok := c.resets[id]
	return code, ok
}

// GoAway returns the GOAWAY frame the server sent, or nil.
func (c *H2Conn) GoAway() *http2.GoAwayFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.goaway
}

// Ended reports whether the server closed the connection (or it failed).
func (c *H2Conn) Ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// WaitEnded waits up to d for the server to close the connection.
func (c *H2Conn) WaitEnded(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}
