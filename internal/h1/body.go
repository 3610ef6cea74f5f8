package h1

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// body is a request body: Content-Length bytes or a chunked body read
// from the connection's reader. It is locked, because a handler may hand
// it to a goroutine that outlives it (http.Transport writes request bodies
// from its own goroutine): once the handler returned, reads fail with
// http.ErrBodyReadAfterClose and cannot steal the next request's bytes.
type body struct {
	mu        sync.Mutex
	r         *reader
	remaining int64
	chunked   bool
	cr        chunkedReader
	cont      *conn // send 100 Continue before the first read
	c         *conn // the connection, told of the body's end (ended)
	seq       uint64
	readBy    time.Duration // the read deadline ReadTimeout gives it, from c.accepted (0: none)
	eof       bool
	closed    bool
	err       error
}

// Read reads the body.
func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.read(p)
}

func (b *body) read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.cont != nil {
		b.cont.writeContinue()
		b.cont = nil
	}
	if b.chunked {
		n, err := b.cr.Read(p)
		if err != nil {
			b.err = err
			if err == io.EOF {
				b.ended()
			}
		}
		return n, err
	}
	if b.remaining == 0 {
		b.ended()
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.r.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 {
		b.ended()
		return n, io.EOF
	}
	if err != nil {
		b.err = unexpected(err)
		return n, b.err
	}
	return n, nil
}

// ended notes that the body has been read to its end: the client has
// sent all of its request.
func (b *body) ended() {
	b.eof, b.err = true, io.EOF
	if b.c != nil {
		b.c.watchFrom(b.seq)
	}
}

// drained reports whether the body has been read to its end. It does
// not wait for a Read in progress in another goroutine: that one has
// not reached the end yet, or is about to, and either way the
// connection is still being read.
func (b *body) drained() bool {
	if !b.mu.TryLock() {
		return false
	}
	defer b.mu.Unlock()
	return b.eof
}

// Close makes further reads fail; the server discards what is left.
func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// finish closes the body for the handler and, when the connection is to
// be kept, discards what the handler left unread (up to maxDrainBytes). It
// reports whether the connection can serve another request.
func (b *body) finish(keep bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.c = nil // the handler has returned: no request under way to publish
	if !keep {
		return false
	}
	if b.eof {
		return true
	}
	if b.cont != nil {
		return false // the client was not told to send the body
	}
	var buf [512]byte
	for drained := 0; drained <= maxDrainBytes; {
		n, err := b.read(buf[:])
		drained += n
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}
