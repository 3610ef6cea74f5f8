package h1

import (
	"errors"
	"io"
	"net/http"
	"strconv"
)

// Chunked transfer coding (RFC 9112 §7.1), decoded strictly: a size of
// hexadecimal digits only, chunk extensions only in their exact grammar,
// CRLF and nothing else after the size line and after each chunk's data,
// trailer fields parsed like header fields. Every deviation is an error;
// an error is sticky.

const (
	maxChunkLine     = 4096 // size line including extensions
	maxChunkSizeHex  = 15   // hex digits: 60 bits, far below overflow
	maxTrailerFields = 64
)

// ErrChunked is wrapped by every error about malformed chunked data.
var ErrChunked = errors.New("h1: malformed chunked encoding")

type chunkError string

func (e chunkError) Error() string        { return "h1: malformed chunked encoding: " + string(e) }
func (e chunkError) Is(target error) bool { return target == ErrChunked }

type chunkState uint8

const (
	chunkSize chunkState = iota
	chunkData
	chunkDataEnd
	chunkDone
)

// chunkedReader decodes a chunked body from r.
type chunkedReader struct {
	r       *reader
	state   chunkState
	left    int64 // bytes left in the current chunk
	err     error
	trailer http.Header // receives trailer fields when keepTrailer
	keep    bool
	maxTrl  int // limit on the trailer section's bytes
}

func (cr *chunkedReader) reset(r *reader, keepTrailer bool, maxTrailerBytes int) {
	*cr = chunkedReader{r: r, keep: keepTrailer, maxTrl: maxTrailerBytes}
}

// done reports whether the whole body, trailers included, was read.
func (cr *chunkedReader) done() bool { return cr.state == chunkDone }

func (cr *chunkedReader) Read(p []byte) (int, error) {
	for cr.err == nil {
		switch cr.state {
		case chunkSize:
			cr.err = cr.readSize()
			if cr.err == nil && cr.left == 0 {
				cr.err = cr.readTrailer()
				if cr.err == nil {
					cr.state = chunkDone
					cr.err = io.EOF
				}
			}
		case chunkData:
			if len(p) == 0 {
				return 0, nil
			}
			if int64(len(p)) > cr.left {
				p = p[:cr.left]
			}
			n, err := cr.r.Read(p)
			cr.left -= int64(n)
			if cr.left == 0 {
				cr.state = chunkDataEnd
			}
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				cr.err = err
			}
			if n > 0 {
				return n, nil
			}
		case chunkDataEnd:
			if err := cr.r.need(2); err != nil {
				cr.err = unexpected(err)
				break
			}
			b := cr.r.bytes()
			if b[0] != '\r' || b[1] != '\n' {
				cr.err = chunkError("chunk data not followed by CRLF")
				break
			}
			cr.r.discard(2)
			cr.state = chunkSize
		case chunkDone:
			cr.err = io.EOF
		}
	}
	return 0, cr.err
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readSize reads a chunk-size line: 1*HEXDIG [ chunk-ext ] CRLF.
func (cr *chunkedReader) readSize() error {
	line, err := cr.r.line(maxChunkLine)
	if err != nil {
		if err == errLineTooLong {
			return chunkError("chunk size line too long")
		}
		return unexpected(err)
	}
	n, err := parseChunkSizeLine(line)
	if err != nil {
		return err
	}
	cr.left = n
	cr.state = chunkData
	return nil
}

// parseChunkSizeLine parses a whole size line, LF included.
func parseChunkSizeLine(line []byte) (int64, error) {
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return 0, chunkError("bare LF after chunk size")
	}
	line = line[:len(line)-2]
	var n int64
	i := 0
	for ; i < len(line); i++ {
		d, ok := unhex(line[i])
		if !ok {
			break
		}
		if i == maxChunkSizeHex {
			return 0, chunkError("chunk size too large")
		}
		n = n<<4 | int64(d)
	}
	if i == 0 {
		return 0, chunkError("invalid chunk size")
	}
	if err := checkChunkExt(line[i:]); err != nil {
		return 0, err
	}
	return n, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// checkChunkExt validates *( BWS ";" BWS token [ BWS "=" BWS ( token /
// quoted-string ) ] ). Extensions are ignored once valid.
func checkChunkExt(b []byte) error {
	ws := func(i int) int {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		return i
	}
	tok := func(i int) int {
		for i < len(b) && tchar[b[i]] {
			i++
		}
		return i
	}
	for i := 0; i < len(b); {
		i = ws(i)
		if i == len(b) || b[i] != ';' {
			return chunkError("invalid chunk extension")
		}
		i = ws(i + 1)
		j := tok(i)
		if j == i {
			return chunkError("invalid chunk extension name")
		}
		k := ws(j)
		switch {
		case k < len(b) && b[k] == '=':
			i = ws(k + 1)
			if i < len(b) && b[i] == '"' {
				end, ok := quotedString(b, i)
				if !ok {
					return chunkError("invalid chunk extension value")
				}
				i = end
			} else if j = tok(i); j > i {
				i = j
			} else {
				return chunkError("invalid chunk extension value")
			}
		case k == len(b) && k != j:
			return chunkError("whitespace at the end of a chunk extension")
		default:
			i = k
		}
	}
	return nil
}

// quotedString returns the offset after the quoted-string starting at b[i].
func quotedString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			i++
			if i == len(b) || !isFieldValueByte(b[i]) {
				return 0, false
			}
		case !isFieldValueByte(c):
			return 0, false
		}
	}
	return 0, false
}

// readTrailer reads the trailer section after the last chunk: field lines
// parsed as strictly as header fields, then an empty line.
func (cr *chunkedReader) readTrailer() error {
	total, count := 0, 0
	for {
		line, err := cr.r.line(maxChunkLine)
		if err != nil {
			if err == errLineTooLong {
				return chunkError("trailer line too long")
			}
			return unexpected(err)
		}
		total += len(line)
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return chunkError("bare LF in trailer section")
		}
		line = line[:len(line)-2]
		if len(line) == 0 {
			return nil
		}
		if count++; count > maxTrailerFields || total > cr.maxTrl {
			return chunkError("trailer section too large")
		}
		f, err := parseField(line, 0)
		if err != nil {
			return chunkError("invalid trailer field: " + err.Error())
		}
		if !cr.keep {
			continue
		}
		name := f.name.get(line)
		switch classify(name) {
		case kindContentLength, kindTransferEncoding, kindHost, kindTrailer, kindConnection:
			continue // framing and routing fields are not allowed in trailers
		}
		if cr.trailer == nil {
			cr.trailer = make(http.Header)
		}
		canonicalizeName(name)
		cr.trailer[string(name)] = append(cr.trailer[string(name)], string(f.value.get(line)))
	}
}

// chunkHeader appends the size line of a chunk of n bytes to b.
func chunkHeader(b []byte, n int) []byte {
	b = strconv.AppendInt(b, int64(n), 16)
	return append(b, '\r', '\n')
}
