package h1

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// readBufSize is the size of a pooled read buffer: enough for the head of
// almost every request and response. Larger heads grow the buffer of that
// one connection up to the configured limit.
const readBufSize = 4096

var readBufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

var errBufferFull = errors.New("h1: buffer full")

// reader is a buffered reader over a connection. Unlike bufio.Reader it
// exposes its buffer, so a head is parsed in place; it can grow for one
// large head; and what it holds can be handed over to another server.
type reader struct {
	src    io.Reader
	buf    []byte
	pooled *[]byte // buf's pool entry, nil when buf was grown
	r, w   int
	err    error
	// onBlock, when set, is called before the reader reads from its
	// source, which may block.
	onBlock func()
}

func (b *reader) reset(src io.Reader) {
	b.src = src
	if b.buf == nil {
		b.pooled = readBufPool.Get().(*[]byte)
		b.buf = *b.pooled
	}
	b.r, b.w, b.err = 0, 0, nil
}

// release returns the buffer to the pool; the reader is unusable until
// reset.
func (b *reader) release() {
	if b.pooled != nil {
		readBufPool.Put(b.pooled)
	}
	b.buf, b.pooled, b.src, b.onBlock = nil, nil, nil, nil
	b.r, b.w = 0, 0
}

func (b *reader) buffered() int    { return b.w - b.r }
func (b *reader) bytes() []byte    { return b.buf[b.r:b.w] }
func (b *reader) discard(n int)    { b.r += n }
func (b *reader) stickyErr() error { return b.err }

// fill reads once more from the source, after moving unread bytes to the
// front of the buffer. It returns errBufferFull when there is no room.
func (b *reader) fill() error {
	if b.err != nil {
		return b.err
	}
	if b.r > 0 {
		if b.r == b.w {
			b.r, b.w = 0, 0
		} else if b.w == len(b.buf) {
			b.w = copy(b.buf, b.buf[b.r:b.w])
			b.r = 0
		}
	}
	if b.w == len(b.buf) {
		return errBufferFull
	}
	if b.onBlock != nil {
		b.onBlock()
	}
	for range 100 {
		n, err := b.src.Read(b.buf[b.w:])
		b.w += n
		if err != nil {
			b.err = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	b.err = io.ErrNoProgress
	return b.err
}

// grow enlarges the buffer to at most limit bytes; it reports false when
// the buffer already has that size.
func (b *reader) grow(limit int) bool {
	n := 2 * len(b.buf)
	if n > limit {
		n = limit
	}
	if n <= len(b.buf) {
		return false
	}
	nb := make([]byte, n)
	b.w = copy(nb, b.buf[b.r:b.w])
	b.r = 0
	if b.pooled != nil {
		readBufPool.Put(b.pooled)
		b.pooled = nil
	}
	b.buf = nb
	return true
}

// shrink goes back to a pooled buffer after a grown one when what is
// buffered fits.
func (b *reader) shrink() {
	if b.pooled != nil || b.w-b.r > readBufSize {
		return
	}
	p := readBufPool.Get().(*[]byte)
	b.w = copy(*p, b.buf[b.r:b.w])
	b.r = 0
	b.buf, b.pooled = *p, p
}

// Read reads buffered bytes, or reads from the source directly into p
// when nothing is buffered and p is at least as large as the buffer.
func (b *reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.err
		}
		if len(p) >= len(b.buf) {
			if b.onBlock != nil {
				b.onBlock()
			}
			n, err := b.src.Read(p)
			if err != nil {
				b.err = err
			}
			return n, err
		}
		b.r, b.w = 0, 0
		if err := b.fill(); err != nil && b.r == b.w {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// need makes sure at least n bytes are buffered (n must not exceed the
// buffer's size).
func (b *reader) need(n int) error {
	for b.w-b.r < n {
		if err := b.fill(); err != nil {
			return err
		}
	}
	return nil
}

// line returns the next line including its LF and consumes it. The slice
// is valid until the next read. A line longer than max is an error.
func (b *reader) line(max int) ([]byte, error) {
	scanned := 0
	for {
		if i := bytes.IndexByte(b.buf[b.r+scanned:b.w], '\n'); i >= 0 {
			end := b.r + scanned + i + 1
			if end-b.r > max {
				return nil, errLineTooLong
			}
			l := b.buf[b.r:end]
			b.r = end
			return l, nil
		}
		scanned = b.w - b.r
		if scanned > max {
			return nil, errLineTooLong
		}
		if err := b.fill(); err != nil {
			if err == errBufferFull {
				return nil, errLineTooLong
			}
			return nil, err
		}
	}
}

var errLineTooLong = errors.New("h1: line too long")
