package observe

import (
	"bufio"
	"encoding/binary"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
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
	out := newLogWriter(w)
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

// appendAccess formats a as one JSON line.
func appendAccess(b []byte, a *Access) []byte {
	b = append(b, `{"time":"`...)
	b = appendRFC3339Nano(b, a.Time)
	b = append(b, `","level":"INFO","msg":"access"`...)
	b = appendStr(b, `,"request_id":"`, a.RequestID)
	b = appendStr(b, `,"trace_id":"`, a.TraceID)
	b = appendStr(b, `,"method":"`, a.Method)
	b = appendStr(b, `,"path":"`, a.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(a.Status), 10)
	b = appendMillis(b, `,"duration_ms":`, a.Duration)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, a.BytesOut, 10)
	b = append(b, `,"client_ip":"`...)
	if a.ClientIP.IsValid() {
		b = a.ClientIP.AppendTo(b)
	}
	b = append(b, '"')
	if a.API != "" {
		b = appendStr(b, `,"api":"`, a.API)
		b = appendStr(b, `,"operation":"`, a.Operation)
	}
	if a.Upstream != "" {
		b = appendStr(b, `,"upstream":"`, a.Upstream)
		b = appendMillis(b, `,"upstream_ms":`, a.UpstreamDuration)
	}
	if a.Attempts > 0 {
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(a.Attempts), 10)
	}
	if a.Credential != "" {
		b = appendStr(b, `,"credential":"`, a.Credential)
		b = appendStr(b, `,"subject":"`, a.Subject)
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

// appendMillis appends prefix (`,"key":`) and d as whole microseconds in
// milliseconds, with the digits strconv.AppendFloat(float64(µs)/1000,
// 'f', -1, 64) gives (the
// shortest decimal of a number with at most three decimals is those
// decimals, trailing zeros dropped), in integer arithmetic.
func appendMillis(b []byte, prefix string, d time.Duration) []byte {
	b = append(b, prefix...)
	us := d.Microseconds() // at least MinInt64/1000: negating it cannot overflow
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	return appendFraction(b, int(us%1000), 3)
}

// appendFraction appends frac (0 <= frac < 10^width) as the decimals of
// a fraction of width digits: a point and the digits without trailing
// zeros, nothing when frac is 0.
func appendFraction(b []byte, frac, width int) []byte {
	if frac == 0 {
		return b
	}
	var digits [10]byte // width <= 9
	digits[0] = '.'
	for i := width; i >= 1; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := width + 1
	for digits[n-1] == '0' {
		n--
	}
	return append(b, digits[:n]...)
}

// stamp is the part of an RFC 3339 timestamp that stays the same for a
// second: the date and time up to the seconds, and the zone.
type stamp struct {
	sec  int64
	loc  *time.Location
	head string // "2006-01-02T15:04:05"
	zone string // "Z" or "-07:00"
}

// lastStamp is the stamp of the last line's second: the lines of one
// second share it, so the date is formatted once per second.
var lastStamp atomic.Pointer[stamp]

// appendRFC3339Nano appends t as t.AppendFormat(b, time.RFC3339Nano)
// does, formatting the date and zone once per second (and location).
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	st := lastStamp.Load()
	if st == nil || st.sec != sec || st.loc != loc {
		f := t.Truncate(time.Second).AppendFormat(nil, time.RFC3339)
		const headLen = len("2006-01-02T15:04:05")
		if len(f) <= headLen || f[headLen-3] != ':' || (f[headLen] != 'Z' && f[headLen] != '+' && f[headLen] != '-') {
			return t.AppendFormat(b, time.RFC3339Nano) // a year outside 0000-9999
		}
		st = &stamp{sec: sec, loc: loc, head: string(f[:headLen]), zone: string(f[headLen:])}
		lastStamp.Store(st)
	}
	b = append(b, st.head...)
	b = appendFraction(b, t.Nanosecond(), 9)
	return append(b, st.zone...)
}

// appendStr appends prefix (the separator, the key and the opening
// quote, as one constant: `,"key":"`) and v as a JSON string's inside,
// then the closing quote.
func appendStr(b []byte, prefix, v string) []byte {
	b = append(b, prefix...)
	b = appendEscaped(b, v)
	return append(b, '"')
}

// jsonPlain reports whether all eight bytes of x stand for themselves in
// a JSON string: ASCII, not a control character, not '"' or '\\' (the
// "has a byte less than n" and "has a zero byte" word tests, exact as
// booleans).
func jsonPlain(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	ctl := (x - ones*0x20) &^ x
	q := x ^ (ones * '"')
	q = (q - ones) &^ q
	bs := x ^ (ones * '\\')
	bs = (bs - ones) &^ bs
	return (ctl|q|bs|x)&highs == 0
}

// appendEscaped appends s as the inside of a JSON string: quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced.
func appendEscaped(b []byte, s string) []byte {
	if jsonPlainString(s) {
		return append(b, s...) // most values: IDs, paths, names
	}
	return appendEscapedSlow(b, s)
}

// jsonPlainString reports whether every byte of s stands for itself in a
// JSON string: eight bytes at a time, the last eight read again in part,
// and a string shorter than a word byte by byte.
func jsonPlainString(s string) bool {
	p := unsafe.Slice(unsafe.StringData(s), len(s)) // read in place
	if len(p) < 8 {
		for _, c := range p {
			if !jsonPlainByte[c] {
				return false
			}
		}
		return true
	}
	last := binary.LittleEndian.Uint64(p[len(p)-8:])
	for len(p) > 8 {
		if !jsonPlain(binary.LittleEndian.Uint64(p)) {
			return false
		}
		p = p[8:]
	}
	return jsonPlain(last)
}

// jsonPlainByte[c] says whether c stands for itself in a JSON string.
var jsonPlainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendEscapedSlow is appendEscaped for a string with a byte to escape
// or to check as UTF-8.
func appendEscapedSlow(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	p := unsafe.Slice(unsafe.StringData(s), len(s)) // read in place
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && jsonPlain(binary.LittleEndian.Uint64(p[i:])) {
			i += 8
			continue
		}
		if i+8 > len(s) && len(s) >= 8 && jsonPlain(binary.LittleEndian.Uint64(p[len(s)-8:])) {
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
