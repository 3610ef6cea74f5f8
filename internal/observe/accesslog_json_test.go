package observe

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// benchAccess is a gateway's typical line: a proxied GET answered 200 in
// a fraction of a millisecond, with hex request and trace IDs.
func benchAccess() *Access {
	return &Access{
		Time:      time.Date(2026, 11, 27, 12, 47, 3, 123456789, time.UTC),
		RequestID: "9f86d081884c7d659a2feaa0c55ad015", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		API: "pass", Operation: "pass", Method: "GET", Path: "/pass/x", Status: 200,
		Duration: 212345 * time.Nanosecond, UpstreamDuration: 151789 * time.Nanosecond,
		Upstream: "http://127.0.0.1:9000", Attempts: 1, BytesOut: 13, ClientIP: netip.MustParseAddr("127.0.0.1"),
	}
}

// BenchmarkAppendAccess formats a typical line into a reused buffer.
func BenchmarkAppendAccess(b *testing.B) {
	a := benchAccess()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendAccess(buf[:0], a)
	}
}

// refEscape is the inside of a JSON string as the access log writes it,
// a byte at a time: '"' and '\\' escaped with a backslash, \n, \r and \t
// by name, the other control characters as \u00xx, an invalid UTF-8 byte
// as \ufffd, everything else (DEL, valid UTF-8) as it is.
func refEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		case c < utf8.RuneSelf:
			b.WriteByte(c)
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b.WriteString(`\ufffd`)
			} else {
				b.WriteString(s[i : i+n])
			}
			i += n
			continue
		}
		i++
	}
	return b.String()
}

// refLine is the access line built from the standard library's
// formatting: time.RFC3339Nano, strconv's integers and shortest floats,
// netip's address text.
func refLine(a *Access) string {
	var b strings.Builder
	str := func(key, v string) { b.WriteString(`,"` + key + `":"` + refEscape(v) + `"`) }
	millis := func(key string, d time.Duration) { b.WriteString(`,"` + key + `":` + refMillis(d)) }
	b.WriteString(`{"time":"` + a.Time.Format(time.RFC3339Nano) + `","level":"INFO","msg":"access"`)
	str("request_id", a.RequestID)
	str("trace_id", a.TraceID)
	str("method", a.Method)
	str("path", a.Path)
	b.WriteString(`,"status":` + strconv.Itoa(a.Status))
	millis("duration_ms", a.Duration)
	b.WriteString(`,"bytes":` + strconv.FormatInt(a.BytesOut, 10))
	ip := ""
	if a.ClientIP.IsValid() {
		ip = a.ClientIP.String()
	}
	b.WriteString(`,"client_ip":"` + ip + `"`)
	if a.API != "" {
		str("api", a.API)
		str("operation", a.Operation)
	}
	if a.Upstream != "" {
		str("upstream", a.Upstream)
		millis("upstream_ms", a.UpstreamDuration)
	}
	if a.Attempts > 0 {
		b.WriteString(`,"attempts":` + strconv.Itoa(a.Attempts))
	}
	if a.Credential != "" {
		str("credential", a.Credential)
		str("subject", a.Subject)
	}
	if a.Consumer != "" {
		str("consumer", a.Consumer)
	}
	if a.Denial != "" {
		str("denial", a.Denial)
	}
	if a.Error != nil {
		str("error", a.Error.Error())
	}
	b.WriteString("}\n")
	return b.String()
}

// refMillis is d's whole microseconds in milliseconds as strconv writes
// the float64 (shortest, no exponent), and as the exact decimal from 2^52
// µs (about 142 years) up, where float64s are more than 0.001 apart and
// strconv's last digit can differ.
func refMillis(d time.Duration) string {
	us := d.Microseconds()
	if us > -1<<52 && us < 1<<52 {
		return strconv.FormatFloat(float64(us)/1000, 'f', -1, 64)
	}
	s := strings.TrimRight(big.NewRat(us, 1000).FloatString(3), "0")
	return strings.TrimSuffix(s, ".")
}

// randString draws a string of 0 to 80 bytes, most of them plain ASCII,
// some that need escaping or checking: quotes, backslashes, control
// characters, DEL, multi-byte UTF-8 (U+2028 too), invalid UTF-8.
func randString(rng *rand.Rand) string {
	special := []string{"\"", "\\", "\n", "\r", "\t", "\x00", "\x01", "\x1f", "\x7f", " ", "~",
		"é", "€", "😀", "\u2028", "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "<", "&", "!", "#", "]", "^"}
	n := rng.IntN(81)
	if rng.IntN(4) == 0 {
		n = rng.IntN(9)
	}
	var b strings.Builder
	odds := []int{0, 3, 20, 1000}[rng.IntN(4)] // one in odds is special (0: none)
	for b.Len() < n {
		if odds > 0 && rng.IntN(odds) == 0 {
			b.WriteString(special[rng.IntN(len(special))])
		} else {
			b.WriteByte(byte(0x20 + rng.IntN(0x5f)))
		}
	}
	return b.String()
}

// randInt draws an int64 of any number of bits, either sign.
func randInt(rng *rand.Rand) int64 {
	v := int64(rng.Uint64() >> rng.IntN(64))
	switch rng.IntN(8) {
	case 0:
		return -v
	case 1:
		return []int64{0, 1, 9, 10, 99, 100, 999, 1000, 1001, 999999, 1000000, math.MaxInt64, math.MinInt64, -1, -999, -1000}[rng.IntN(16)]
	}
	return v
}

// randDuration draws a duration from nanoseconds to the extremes, either
// sign, often a whole number of microseconds or milliseconds.
func randDuration(rng *rand.Rand) time.Duration {
	d := time.Duration(randInt(rng))
	switch rng.IntN(4) {
	case 0:
		d %= time.Duration(1) << rng.IntN(40)
	case 1:
		d = d % (time.Hour * 24) / time.Microsecond * time.Microsecond
	case 2:
		d = d % time.Hour / time.Millisecond * time.Millisecond
	}
	return d
}

var testZones = []*time.Location{time.UTC, time.Local, time.FixedZone("east", 5*3600+30*60),
	time.FixedZone("west", -7*3600), time.FixedZone("odd", -(3*3600 + 25*60 + 17)), time.FixedZone("z", 0)}

// randTime draws a time between the years 1 and 9999 (and sometimes just
// outside), in one of testZones, with any nanoseconds.
func randTime(rng *rand.Rand) time.Time {
	sec := rng.Int64N(315537897600) - 62135596800 // 0001-01-01 to 9999-12-31
	ns := rng.Int64N(1e9)
	switch rng.IntN(5) {
	case 0:
		ns = ns / 1e3 * 1e3
	case 1:
		ns = ns / 1e6 * 1e6
	case 2:
		ns = []int64{0, 1, 10, 100000000, 999999999, 1000}[rng.IntN(6)]
	}
	t := time.Unix(sec, ns).In(testZones[rng.IntN(len(testZones))])
	if rng.IntN(100) == 0 {
		t = t.AddDate(10000*(rng.IntN(2)*2-1), 0, 0) // outside 0000-9999
	}
	return t
}

func randAddr(rng *rand.Rand) netip.Addr {
	var b16 [16]byte
	for i := range b16 {
		b16[i] = byte(rng.Uint32())
		if rng.IntN(3) == 0 {
			b16[i] = []byte{0, 1, 9, 10, 99, 100, 199, 200, 255}[rng.IntN(9)]
		}
	}
	switch rng.IntN(6) {
	case 0:
		return netip.Addr{}
	case 1:
		return netip.AddrFrom16(b16)
	case 2:
		return netip.AddrFrom4([4]byte(b16[:4])).Unmap()
	case 3:
		return netip.AddrFrom16(b16).WithZone("eth0")
	case 4:
		return netip.AddrFrom16(netip.AddrFrom4([4]byte(b16[:4])).As16()) // IPv4-mapped IPv6
	}
	return netip.AddrFrom4([4]byte(b16[:4]))
}

// randAccess draws an access with each field random, the optional ones
// often empty.
func randAccess(rng *rand.Rand) *Access {
	opt := func() string {
		if rng.IntN(3) == 0 {
			return ""
		}
		return randString(rng)
	}
	a := &Access{
		Time: randTime(rng), RequestID: randString(rng), TraceID: randString(rng),
		API: opt(), Operation: randString(rng), Method: randString(rng), Path: randString(rng),
		Status: int(randInt(rng)), Duration: randDuration(rng), UpstreamDuration: randDuration(rng),
		Upstream: opt(), Attempts: int(randInt(rng)), BytesOut: randInt(rng), ClientIP: randAddr(rng),
		Subject: randString(rng), Credential: opt(), Consumer: opt(), Denial: opt(),
	}
	if rng.IntN(3) == 0 {
		a.Error = errors.New(randString(rng))
	}
	if rng.IntN(2) == 0 {
		a.Attempts = rng.IntN(4)
	}
	return a
}

// The formatted line is, byte for byte, the one the standard library's
// formatting makes, for random fields of every kind, appended after other
// bytes (left as they were) into buffers with room to spare, none or a
// little (so that every growth path is taken).
func TestAppendAccess_SameAsReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cases := []*Access{benchAccess(), sampleAccess(), {}}
	for range 10000 {
		cases = append(cases, randAccess(rng))
	}
	for i, a := range cases {
		want := refLine(a)
		for _, spare := range []int{0, rng.IntN(64), rng.IntN(len(want) + 64), 1024} {
			buf := make([]byte, 3, 3+spare)
			copy(buf, "ab{")
			got := appendAccess(buf, a)
			if !bytes.HasPrefix(got, []byte("ab{")) || string(got[3:]) != want {
				t.Fatalf("case %d (room %d):\n got %q\nwant %q", i, spare, got, "ab{"+want)
			}
		}
	}
}

// Each piece, on its own, against the standard library.
func TestPutNumbers_SameAsStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	check := func(what string, got []byte, want string) {
		t.Helper()
		if string(got) != want {
			t.Fatalf("%s: got %q, want %q", what, got, want)
		}
	}
	ints := []int64{math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for p := int64(1); p > 0 && p <= math.MaxInt64/10; p *= 10 {
		ints = append(ints, p-1, p, p+1, -p, -p+1, 10*p-1)
	}
	for range 50000 {
		ints = append(ints, randInt(rng))
	}
	for _, v := range ints {
		check("putInt", putInt(room([]byte("x"), intRoom), v), "x"+strconv.FormatInt(v, 10))
	}
	ds := []time.Duration{math.MaxInt64, math.MinInt64, -999, -1000, -999999, 999999, 1000000}
	for range 50000 {
		ds = append(ds, randDuration(rng))
	}
	for _, d := range ds {
		check("appendMillis", appendMillis([]byte("x"), `,"k":`, d), `x,"k":`+refMillis(d))
	}
	for ns := uint(0); ns < 1e9; ns += 1 + uint(rng.IntN(12000)) {
		for _, v := range []uint{ns, ns / 1e3 * 1e3, ns / 1e6 * 1e6} {
			want := strings.TrimRight(fmt.Sprintf(".%09d", v), "0")
			if want == "." {
				want = ""
			}
			check("putNanos", putNanos(room([]byte("x"), nanosRoom), v), "x"+want)
		}
	}
	for v := range 256 {
		for pos := range 4 {
			ip := [4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
			ip[pos] = byte(v)
			check("putIPv4", putIPv4(room([]byte("x"), ipv4Room), ip), "x"+netip.AddrFrom4(ip).String())
		}
	}
}

// The timestamp is what time.RFC3339Nano makes of random times, in zones
// of every kind and years 1 to 9999 (and outside), one after another as
// the cached second changes.
func TestAppendRFC3339Nano_Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200000 {
		tm := randTime(rng)
		if rng.IntN(2) == 0 {
			tm = time.Unix(1764247623+rng.Int64N(3), rng.Int64N(1e9)).In(testZones[rng.IntN(len(testZones))])
		}
		if got, want := string(appendRFC3339Nano([]byte("x"), tm)), "x"+tm.Format(time.RFC3339Nano); got != want {
			t.Fatalf("%v: got %q, want %q", tm, got, want)
		}
	}
}

// appendEscaped writes refEscape's text for strings of every length up to
// 80 with a byte to escape or check at every place (and none), into
// buffers with room and without.
func TestAppendEscaped_EveryLengthAndPlace(t *testing.T) {
	specials := []string{"\"", "\\", "\n", "\x00", "\x1f", "\x7f", "é", "\xff", "\xe2\x82", "€", " ", "~", "!", "#", "]"}
	plain := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?=&%+ abcdefghijklmnop"
	for n := 0; n <= 80; n++ {
		cases := []string{plain[:n]}
		for i := 0; i < n; i++ {
			for _, sp := range specials {
				cases = append(cases, plain[:i]+sp+plain[i:n-1])
			}
		}
		for _, s := range cases {
			want := "ab" + refEscape(s)
			for _, spare := range []int{0, len(s) - 1, len(s), len(s) + 8} {
				buf := make([]byte, 2, 2+max(spare, 0))
				copy(buf, "ab")
				if got := string(appendEscaped(buf, s)); got != want {
					t.Fatalf("%q (room %d): got %q, want %q", s, spare, got, want)
				}
			}
		}
	}
}

// jsonPlain is true exactly when each of a word's eight bytes stands for
// itself in a JSON string: every byte value at every place, among bytes
// of each kind (a byte from 0x80 up carries in jsonPlainBits' sums).
func TestJSONPlain_EveryByte(t *testing.T) {
	plainByte := func(c byte) bool { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' }
	fills := []byte{'a', ' ', '~', 0x7f, '!', '#', '[', ']', 0x80, 0xff, 0x1f, '"', '\\', 0}
	rng := rand.New(rand.NewPCG(9, 10))
	try := func(w [8]byte) {
		want := true
		for _, c := range w {
			want = want && plainByte(c)
		}
		if got := jsonPlain(uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56); got != want {
			t.Fatalf("jsonPlain(% x) = %v, want %v", w, got, want)
		}
	}
	for c := range 256 {
		for pos := range 8 {
			for _, f := range fills {
				var w [8]byte
				for i := range w {
					w[i] = f
				}
				w[pos] = byte(c)
				try(w)
				for i := range w { // the others plain but random
					if i != pos {
						w[i] = byte(0x20 + rng.IntN(0x5f))
					}
				}
				try(w)
			}
		}
	}
	for range 1000000 {
		var w [8]byte
		for i := range w {
			w[i] = byte(rng.Uint32())
			if rng.IntN(2) == 0 {
				w[i] = byte(0x20 + rng.IntN(0x60))
			}
		}
		try(w)
	}
}

// A line is formatted without allocating once its buffer has room.
func TestAppendAccess_DoesNotAllocate(t *testing.T) {
	a := benchAccess()
	buf := appendAccess(nil, a)
	if n := testing.AllocsPerRun(1000, func() { buf = appendAccess(buf[:0], a) }); n != 0 {
		t.Fatalf("%v allocations per line, want 0", n)
	}
}
