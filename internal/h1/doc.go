// Package h1 is a strict, fast HTTP/1.1 server and upstream transport for
// the gateway's hot path.
//
// Server serves an http.Handler over plain TCP with one goroutine per
// connection, pooled buffers and a request-head parser that does not
// allocate. It parses RFC 9112 strictly: anything that could let two
// parsers disagree on where a request ends (bare LF, obs-fold, Content-Length
// with Transfer-Encoding, duplicate or malformed lengths, a transfer coding
// other than chunked, ...) is refused with 400 and the connection closed.
// What the fast path does not handle (protocol upgrades such as WebSocket
// and h2c, the HTTP/2 connection preface) is handed, with the bytes already
// read, to a standard *http.Server given as Fallback. A request whose
// client closes its connection while the request runs has its context
// cancelled (Server.ClientCloseCheck).
//
// Transport is an http.RoundTripper for plain http:// upstreams that reads
// each response synchronously on the caller's goroutine, with no goroutine
// per connection or per request, from a per-host LIFO pool of idle
// connections. HTTPS and HTTP/2 upstreams stay on http.Transport.
//
// Both work unchanged with httputil.ReverseProxy.
package h1
