package observe

import (
	"bufio"
	"encoding/binary"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// jsonSink writes access-log lines, formatted by hand without allocating,
// into a buffer that is flushed every interval and when it fills: one
// write system call for many requests instead of one each. A crash can
// lose the lines of the last interval (like nginx's access_log buffer=).
type jsonSink struct {
	mu     sync.Mutex
	out    io.Writer
	w      *bufio.Writer
	errs   atomic.Uint64 // failed writes; their lines are dropped
	dirty  bool
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// DefaultAccessLogFlush is how often buffered access-log lines are written.
const DefaultAccessLogFlush = 200 * time.Millisecond

// accessLogBuffer is the size of the buffer between flushes.
const accessLogBuffer = 64 << 10

// NewJSONAccessLog returns an access log writing one JSON line per request
// to w, buffered and flushed every flushEvery (DefaultAccessLogFlush when
// zero) and on Close. The lines have the same fields, in the same order,
// as a log/slog JSON handler would write for NewAccessLog.
func NewJSONAccessLog(w io.Writer, flushEvery time.Duration) *AccessLog {
	if flushEvery <= 0 {
		flushEvery = DefaultAccessLogFlush
	}
	out := &lineWriter{w: newLogWriter(w)}
	s := &jsonSink{out: out, w: bufio.NewWriterSize(out, accessLogBuffer), stop: make(chan struct{}), done: make(chan struct{})}
	go s.flushLoop(flushEvery)
	return &AccessLog{sink: s}
}

func (s *jsonSink) flushLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.flushNow()
		}
	}
}

func (s *jsonSink) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.w.Flush()
	s.check(err)
	return err
}

// flushNow writes what is buffered.
func (s *jsonSink) flushNow() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return nil
	}
	s.dirty = false
	err := s.w.Flush()
	s.check(err)
	return err
}

// check counts a failed write and drops what is buffered, so that the
// next lines are written when the output works again (a bufio.Writer
// keeps failing after its first error). s.mu is held.
func (s *jsonSink) check(err error) {
	if err != nil {
		s.errs.Add(1)
		s.w.Reset(s.out)
	}
}

// lineWriter is the sink's output. A write that fails part way (a full
// disk: the kernel takes what fits) leaves the output inside a line; the
// next write ends that line first, so that a failure breaks one line at
// most, and every line after it is whole and on its own for the programs
// that read the log line by line.
type lineWriter struct {
	w   io.Writer
	mid bool // the last write ended inside a line
}

var newline = []byte{'\n'}

func (lw *lineWriter) Write(p []byte) (int, error) {
	if lw.mid {
		if _, err := lw.w.Write(newline); err != nil {
			return 0, err
		}
		lw.mid = false
	}
	n, err := lw.w.Write(p)
	if n > 0 {
		lw.mid = p[n-1] != '\n'
	}
	return n, err
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (s *jsonSink) log(a *Access) {
	bp := linePool.Get().(*[]byte)
	b := appendAccess((*bp)[:0], a)
	s.mu.Lock()
	if !s.closed {
		_, err := s.w.Write(b)
		s.check(err)
		s.dirty = true
	}
	s.mu.Unlock()
	if cap(b) <= 4<<10 {
		*bp = b
		linePool.Put(bp)
	}
}

// appendAccess formats a as one JSON line. A constant of up to 16 bytes
// is appended with a few stores, a longer one with a call to memmove; a
// string's closing quote goes with the constant after it where one
// follows for sure.
func appendAccess(b []byte, a *Access) []byte {
	b = append(b, `{"time":"`...)
	b = appendRFC3339Nano(b, a.Time)
	b = append(b, `","level":"INFO"`...)
	b = append(b, `,"msg":"access",`...)
	b = appendEscaped(append(b, `"request_id":"`...), a.RequestID)
	b = appendEscaped(append(b, `","trace_id":"`...), a.TraceID)
	b = appendEscaped(append(b, `","method":"`...), a.Method)
	b = appendEscaped(append(b, `","path":"`...), a.Path)
	// Room for the numbers and an IPv4 address, put without growth checks.
	b = room(b, len(`","status":`)+intRoom+len(`,"duration_ms":`)+millisRoom+
		len(`,"bytes":`)+intRoom+len(`,"client_ip":"`)+ipv4Room)
	b = append(b, `","status":`...)
	b = putInt(b, int64(a.Status))
	b = append(b, `,"duration_ms":`...)
	b = putMillis(b, a.Duration)
	b = append(b, `,"bytes":`...)
	b = putInt(b, a.BytesOut)
	b = append(b, `,"client_ip":"`...)
	if a.ClientIP.Is4() {
		b = putIPv4(b, a.ClientIP.As4())
	} else if a.ClientIP.IsValid() {
		b = a.ClientIP.AppendTo(b)
	}
	b = append(b, '"')
	if a.API != "" {
		b = appendEscaped(append(b, `,"api":"`...), a.API)
		b = appendStr(b, `","operation":"`, a.Operation)
	}
	if a.Upstream != "" {
		b = appendEscaped(append(b, `,"upstream":"`...), a.Upstream)
		b = room(b, len(`","upstream_ms":`)+millisRoom)
		b = append(b, `","upstream_ms":`...)
		b = putMillis(b, a.UpstreamDuration)
	}
	if a.Attempts > 0 {
		b = room(b, len(`,"attempts":`)+intRoom)
		b = append(b, `,"attempts":`...)
		b = putInt(b, int64(a.Attempts))
	}
	if a.Credential != "" {
		b = appendEscaped(append(b, `,"credential":"`...), a.Credential)
		b = appendStr(b, `","subject":"`, a.Subject)
	}
	if a.Consumer != "" {
		b = appendStr(b, `,"consumer":"`, a.Consumer)
	}
	if a.Denial != "" {
		b = appendStr(b, `,"denial":"`, a.Denial)
	}
	if a.Error != nil {
		b = appendStr(b, `,"error":"`, a.Error.Error())
	}
	return append(b, "}\n"...)
}

// room returns b with room for n more bytes, growing it if it has not.
func room(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		b = slices.Grow(b, n)
	}
	return b
}

// The put functions write a number into the room past b's length, which
// the caller has made (room) at least as large as the function's ...Room
// constant says, with stores of whole words, and return b with the
// number's bytes added; the bytes stored past them are left over, like
// any spare capacity. They call no growth (most call nothing), and with
// too little room they panic on a bounds check.
const (
	intRoom    = 24                     // a sign and up to 20 digits, with a store's overhang
	fracRoom   = 4                      // a point and 3 digits
	nanosRoom  = 10                     // a point and 9 digits
	ipv4Room   = 16                     // 15 bytes, with a store's overhang
	millisRoom = 1 + intRoom + fracRoom // with a sign
)

// dec[v], for v < 1000, is v in decimal in the forms that are stored:
// bytes 0-2, v's digits without leading zeros (then zeros); byte 3, their
// number in bits 0-1 and in bits 2-4 the length of the fraction v/1000
// (below); bytes 4-7, v/1000 as decimals: a point and three digits with
// leading zeros (".042"), of which the fraction is the point and the
// digits up to the last one that is not zero (".042", ".5" for 500;
// nothing for 0).
var dec = func() (t [1000]uint64) {
	for v := range t {
		d := [3]byte{byte('0' + v/100), byte('0' + v/10%10), byte('0' + v%10)}
		n := 3
		if v < 10 {
			n = 1
		} else if v < 100 {
			n = 2
		}
		var x uint64
		for i, c := range d[3-n:] {
			x |= uint64(c) << (8 * i)
		}
		frac := 0
		if v != 0 {
			frac = 4
			for d[frac-2] == '0' {
				frac--
			}
		}
		x |= uint64(n|frac<<2) << 24
		x |= uint64('.')<<32 | uint64(d[0])<<40 | uint64(d[1])<<48 | uint64(d[2])<<56
		t[v] = x
	}
	return t
}()

// putSmall puts v < 1000 in decimal (4 bytes of room).
func putSmall(b []byte, v uint) []byte {
	n := len(b)
	x := dec[v]
	binary.LittleEndian.PutUint32(b[n:n+4], uint32(x))
	return b[:n+int(x>>24)&3]
}

// putInt puts v in decimal, as strconv.AppendInt(b, v, 10) appends it.
func putInt(b []byte, v int64) []byte {
	u := uint64(v)
	if v < 0 {
		n := len(b)
		b = b[:n+1]
		b[n] = '-'
		u = -u
	}
	if u < 1000 { // a status, attempts, a small body's size
		return putSmall(b, uint(u))
	}
	// The groups of three digits after the leading one, ten bits each in
	// g, the first in the lowest bits: at most six (a uint64 has at most
	// 20 digits).
	g, k := uint64(0), 0
	for ; u >= 1000; k++ {
		g = g<<10 | u%1000
		u /= 1000
	}
	b = putSmall(b, uint(u))
	for ; k > 0; k-- {
		n := len(b)
		binary.LittleEndian.PutUint32(b[n:n+4], uint32(dec[g&1023]>>40))
		b = b[:n+3]
		g >>= 10
	}
	return b
}

// putFrac puts frac < 1000 as the decimals of frac/1000: a point and the
// digits without trailing zeros, nothing for 0.
func putFrac(b []byte, frac uint) []byte {
	n := len(b)
	x := dec[frac]
	binary.LittleEndian.PutUint32(b[n:n+4], uint32(x>>32))
	return b[:n+int(x>>26)&7]
}

// putNanos puts ns < 1e9 as the decimals of ns/1e9, as time.RFC3339Nano
// writes a second's fraction: a point and the digits without trailing
// zeros, nothing for 0. The point and ten digits are stored as two words.
func putNanos(b []byte, ns uint) []byte {
	n := len(b)
	w := (*[nanosRoom]byte)(b[n : n+nanosRoom])
	us := ns / 1e3
	hi, mid, lo := dec[us/1e3], dec[us%1e3], dec[ns%1e3]
	binary.LittleEndian.PutUint64(w[:], hi>>32&0xffffffff|mid>>40<<32|lo>>40<<56)
	binary.LittleEndian.PutUint16(w[8:], uint16(lo>>48))
	switch { // up to the last group that is not zero
	case lo>>26&7 != 0:
		n += 6 + int(lo>>26)&7
	case mid>>26&7 != 0:
		n += 3 + int(mid>>26)&7
	default:
		n += int(hi>>26) & 7
	}
	return b[:n]
}

// putIPv4 puts ip in dotted decimal, as netip.Addr.AppendTo appends it.
func putIPv4(b []byte, ip [4]byte) []byte {
	n := len(b)
	w := (*[ipv4Room]byte)(b[n : n+ipv4Room])
	i := putOctet(w, 0, ip[0])
	i = putOctet(w, i, ip[1])
	i = putOctet(w, i, ip[2])
	i = putOctet(w, i, ip[3])
	return b[:n+i-1] // without the last dot
}

// putOctet puts o and a dot at w[i:] and returns the index after them.
func putOctet(w *[ipv4Room]byte, i int, o byte) int {
	x := dec[o]
	binary.LittleEndian.PutUint32(w[i:], uint32(x))
	i += int(x>>24) & 3
	w[i] = '.'
	return i + 1
}

// appendMillis appends prefix (`,"key":`) and d as putMillis puts it
// (the line makes room for its numbers once, and puts them).
func appendMillis(b []byte, prefix string, d time.Duration) []byte {
	b = room(b, len(prefix)+millisRoom)
	return putMillis(append(b, prefix...), d)
}

// putMillis puts d as whole microseconds in milliseconds, the exact
// decimal with trailing zeros dropped, in integer arithmetic (millisRoom
// bytes). Below 2^52 µs (about 142 years) these are the digits
// strconv.AppendFloat(float64(µs)/1000, 'f', -1, 64) gives: the shortest
// decimal of a number with at most three decimals is those decimals.
func putMillis(b []byte, d time.Duration) []byte {
	us := d.Microseconds() // at least MinInt64/1000: negating it cannot overflow
	if us < 0 {
		n := len(b)
		b = b[:n+1]
		b[n] = '-'
		us = -us
	}
	if ms := uint64(us) / 1000; ms < 1000 {
		b = putSmall(b, uint(ms))
	} else {
		b = putInt(b, int64(ms))
	}
	return putFrac(b, uint(uint64(us)%1000))
}

// stamp is the part of an RFC 3339 timestamp that stays the same for a
// second: the date and time up to the seconds, and the zone, each in an
// array that is copied with a few moves.
type stamp struct {
	sec     int64
	loc     *time.Location
	head    [24]byte // "2006-01-02T15:04:05", then zeros
	zone    [8]byte  // "Z" or "-07:00", then zeros
	zoneLen int
}

// lastStamp is the stamp of the last line's second: the lines of one
// second share it, so the date is formatted once per second.
var lastStamp atomic.Pointer[stamp]

// appendRFC3339Nano appends t as t.AppendFormat(b, time.RFC3339Nano)
// does, formatting the date and zone once per second (and location).
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	const headLen = len("2006-01-02T15:04:05")
	sec, loc := t.Unix(), t.Location()
	st := lastStamp.Load()
	if st == nil || st.sec != sec || st.loc != loc {
		f := t.Truncate(time.Second).AppendFormat(nil, time.RFC3339)
		if len(f) <= headLen || len(f) > headLen+len(stamp{}.zone) || f[headLen-3] != ':' ||
			(f[headLen] != 'Z' && f[headLen] != '+' && f[headLen] != '-') {
			return t.AppendFormat(b, time.RFC3339Nano) // a year outside 0000-9999 (or a zone too long)
		}
		st = &stamp{sec: sec, loc: loc}
		copy(st.head[:], f[:headLen])
		st.zoneLen = copy(st.zone[:], f[headLen:])
		lastStamp.Store(st)
	}
	b = room(b, len(st.head)+nanosRoom+len(st.zone))
	n := len(b)
	*(*[len(st.head)]byte)(b[n : n+len(st.head)]) = st.head
	b = putNanos(b[:n+headLen], uint(t.Nanosecond()))
	n = len(b)
	*(*[len(st.zone)]byte)(b[n : n+len(st.zone)]) = st.zone
	return b[:n+st.zoneLen]
}

// appendStr appends prefix (the separator, the key and the opening
// quote, as one constant: `,"key":"`, after the previous string's closing
// quote if it has not been written) and v as a JSON string's inside, then
// the closing quote.
func appendStr(b []byte, prefix, v string) []byte {
	b = append(b, prefix...)
	b = appendEscaped(b, v)
	return append(b, '"')
}

// jsonPlainBits has the high bit of each of x's eight bytes below 0x80
// set if and only if the byte stands for itself in a JSON string: c^2 is
// below 0x21 for the control characters and for '"' (0x22^2 is 0x20),
// c^'\\' is 0 for the backslash, and adding 0x5f and 0x7f brings the
// others to 0x80 and up without a carry into the next byte. A byte from
// 0x80 up is the caller's to reject (by x's high bits): its sums can
// carry into the next byte and make it look plain.
func jsonPlainBits(x uint64) uint64 {
	const ones = 0x0101010101010101
	return ((x ^ ones*2) + ones*0x5f) & ((x ^ ones*'\\') + ones*0x7f)
}

// highs is the high bit of each of a word's eight bytes.
const highs = 0x8080808080808080

// jsonPlain reports whether all eight bytes of x stand for themselves in
// a JSON string.
func jsonPlain(x uint64) bool { return jsonPlainBits(x)&^x&highs == highs }

// appendEscaped appends s as the inside of a JSON string: quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced.
// Most values (IDs, paths, names) stand for themselves: when b has room
// for them, they are read as words, stored with the same words and kept
// if every byte stands for itself. Up to 32 bytes take two or four
// overlapping words and no loop, a longer string eight bytes at a time
// (the last eight read again in part), a string under eight bytes two
// overlapping halves or its first, middle and last bytes.
func appendEscaped(b []byte, s string) []byte {
	n := len(b)
	if len(s) > cap(b)-n {
		return appendEscapedSlow(b, s)
	}
	d := b[n : n+len(s)]
	switch {
	case len(s) < 4:
		if len(s) == 0 {
			return b
		}
		const pad = 0x6161616161000000 // "aaaaa" in the bytes not read
		c0, c1, c2 := s[0], s[len(s)/2], s[len(s)-1]
		d[0], d[len(s)/2], d[len(s)-1] = c0, c1, c2
		if jsonPlain(pad | uint64(c0) | uint64(c1)<<8 | uint64(c2)<<16) {
			return b[:n+len(s)]
		}
	case len(s) < 8:
		x, y := le32(s, 0), le32(s, len(s)-4)
		binary.LittleEndian.PutUint32(d, x)
		binary.LittleEndian.PutUint32(d[len(s)-4:], y)
		if jsonPlain(uint64(x) | uint64(y)<<32) {
			return b[:n+len(s)]
		}
	case len(s) <= 16:
		x, y := le64(s, 0), le64(s, len(s)-8)
		binary.LittleEndian.PutUint64(d, x)
		binary.LittleEndian.PutUint64(d[len(s)-8:], y)
		if jsonPlainBits(x)&jsonPlainBits(y)&^(x|y)&highs == highs {
			return b[:n+len(s)]
		}
	case len(s) <= 32: // a 32-digit ID, a URL: no loop
		w, x, y, z := le64(s, 0), le64(s, 8), le64(s, len(s)-16), le64(s, len(s)-8)
		binary.LittleEndian.PutUint64(d, w)
		binary.LittleEndian.PutUint64(d[8:], x)
		binary.LittleEndian.PutUint64(d[len(s)-16:], y)
		binary.LittleEndian.PutUint64(d[len(s)-8:], z)
		if jsonPlainBits(w)&jsonPlainBits(x)&jsonPlainBits(y)&jsonPlainBits(z)&^(w|x|y|z)&highs == highs {
			return b[:n+len(s)]
		}
	default:
		plain := uint64(highs)
		for i := 0; i < len(s)-8; i += 8 {
			x := le64(s, i)
			plain &= jsonPlainBits(x) &^ x
			binary.LittleEndian.PutUint64(d[i:i+8], x)
		}
		x := le64(s, len(s)-8)
		binary.LittleEndian.PutUint64(d[len(s)-8:], x)
		if plain&jsonPlainBits(x)&^x&highs == highs {
			return b[:n+len(s)]
		}
	}
	return appendEscapedSlow(b, s)
}

// le64 and le32 read eight and four bytes of s from i as a little-endian
// number (one load where the processor allows unaligned ones).
func le64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

func le32(s string, i int) uint32 {
	_ = s[i+3]
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}

// appendEscapedSlow is appendEscaped for a string with a byte to escape
// or to check as UTF-8, or that b has no room for.
func appendEscapedSlow(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && jsonPlain(le64(s, i)) {
			i += 8
			continue
		}
		if i+8 > len(s) && len(s) >= 8 && jsonPlain(le64(s, len(s)-8)) {
			break // the tail, in the last eight bytes (read again in part), stands for itself
		}
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
