package gateway

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// errBodyTooLong and errBodyTooShort say that a request body did not
// match its declared Content-Length.
var (
	errBodyTooLong  = errors.New("the request body is longer than its Content-Length")
	errBodyTooShort = errors.New("the request body is shorter than its Content-Length")
)

// checkDeclaredLength refuses an HTTP/2 or HTTP/3 request whose
// content-length field is not one decimal number. Go's HTTP/2 server
// reads an invalid value ("5, 41") as 0 and would let the request be
// forwarded without its body (RFC 9113 §8.1.1: such a request is
// malformed). HTTP/1.1 framing is checked by the server itself.
func checkDeclaredLength(r *http.Request) *policy.Error {
	if r.ProtoMajor < 2 {
		return nil
	}
	vs := r.Header["Content-Length"]
	if len(vs) == 0 {
		return nil
	}
	if len(vs) == 1 && vs[0] != "" && len(vs[0]) <= 18 && allDigits(vs[0]) {
		if n, err := strconv.ParseInt(vs[0], 10, 64); err == nil && n == r.ContentLength {
			return nil
		}
	}
	return policy.BadRequest("bad_content_length", "The request's content-length is not a single decimal number.")
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// wrapBody prepares the request body for the proxy. The wrapper remembers
// why reading failed (a malformed body is the client's 400, not the
// backend's 502) and makes sure the backend never receives a complete
// request whose body did not match its declared length: see bodyReader.
// A request that declares an empty body but whose stream is still open
// (HTTP/2) must end without data before it is forwarded, since the proxy
// sends no body at all for it.
//
// readBy is how long after its arrival the request's body may be read at
// the latest under Go's server (settings.bodyReadBy), for LimitBodyRead.
func wrapBody(w http.ResponseWriter, r *http.Request, readBy time.Duration) *policy.Error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if r.ContentLength == 0 {
		var one [1]byte
		n, err := readSome(r.Body, one[:])
		if n > 0 || err != io.EOF {
			e := policy.BadRequest("bad_request_body", "The request body does not match its declared length.")
			e.Cause = err
			if n > 0 {
				e.Cause = errBodyTooLong
			}
			return e
		}
		r.Body = http.NoBody
		return nil
	}
	b := &bodyReader{ReadCloser: r.Body, remaining: r.ContentLength}
	r.Body = b
	if sw := gatewayWriter(w); sw != nil {
		sw.reqBody = b
		if sw.x != nil {
			b.readBy = sw.x.Start.Add(readBy)
		}
	}
	return nil
}

// errBodyDetached is what a read of the request body gets once the proxy
// has returned.
var errBodyDetached = errors.New("the request body was read after the proxy returned")

// detach makes later reads fail.
func (b *bodyReader) detach() { b.detached.Store(true) }

// readSome reads until it gets data or an error.
func readSome(r io.Reader, p []byte) (int, error) {
	for i := 0; i < 100; i++ {
		if n, err := r.Read(p); n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// bodyReader records the first error reading a request body returned
// (other than io.EOF). When the length is declared (remaining ≥ 0), it
// holds back the last declared byte until the client's body has really
// ended: the proxy copies exactly Content-Length bytes, so a backend
// would see a complete request before the client's surplus data (an
// HTTP/2 stream longer than its content-length) made it malformed.
// Holding the last byte back until EOF ties the request's completion at
// the backend to a verified end of the client's body.
type bodyReader struct {
	io.ReadCloser
	detached atomic.Bool // the proxy is done with it: reads fail
	// readBy is when reading it must end at the latest under Go's
	// server (zero: not known, and LimitBodyRead sets nothing there);
	// limited, whether LimitBodyRead has set a read deadline there.
	readBy    time.Time
	limited   bool
	err       error
	remaining int64 // declared bytes not yet read; -1: length not declared
	held      byte
	holding   bool
	done      bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.detached.Load() {
		return 0, errBodyDetached
	}
	n, err := b.read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *bodyReader) read(p []byte) (int, error) {
	switch {
	case b.remaining < 0:
		return b.ReadCloser.Read(p)
	case b.done:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	case b.holding:
		var one [1]byte
		n, err := readSome(b.ReadCloser, one[:])
		if n > 0 {
			return 0, errBodyTooLong
		}
		if err != io.EOF {
			return 0, err
		}
		p[0] = b.held
		b.holding, b.done = false, true
		return 1, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.ReadCloser.Read(p)
	b.remaining -= int64(n)
	switch {
	case b.remaining == 0 && err == io.EOF:
		b.done = true
		return n, io.EOF
	case b.remaining == 0 && n > 0:
		if err != nil {
			return n, err
		}
		b.held, b.holding = p[n-1], true
		return n - 1, nil
	case err == io.EOF:
		return n, errBodyTooShort
	}
	return n, err
}
