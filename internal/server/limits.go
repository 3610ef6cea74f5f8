package server

import (
	"net/http"
	"time"
)

// HTTP/2 limits of the public listeners. Go's defaults are generous (1 MiB
// frames and windows per stream); these follow Envoy's advice for an edge
// proxy, so that one connection cannot make the gateway buffer much or run
// many handlers. docs/security.md explains each.
const (
	// HTTP2MaxConcurrentStreams is the most requests one connection may
	// have in flight (SETTINGS_MAX_CONCURRENT_STREAMS). Go also bounds the
	// handlers it starts for streams the client reset early (CVE-2023-44487)
	// by this number.
	HTTP2MaxConcurrentStreams = 100
	// HTTP2MaxReadFrameSize is the largest frame accepted: the protocol's
	// initial value (RFC 9113 §6.5.2).
	HTTP2MaxReadFrameSize = 16 << 10
	// HTTP2MaxReceiveBufferPerStream is the flow-control window of one
	// request body, the most it can have buffered unread.
	HTTP2MaxReceiveBufferPerStream = 64 << 10
	// HTTP2MaxReceiveBufferPerConnection is the connection's window.
	HTTP2MaxReceiveBufferPerConnection = 1 << 20
	// HTTP2MaxDecoderHeaderTableSize is the HPACK table the client may use
	// (the protocol's initial value).
	HTTP2MaxDecoderHeaderTableSize = 4096
	// HTTP2WriteByteTimeout closes a connection whose peer has not read a
	// byte for this long (a slow-read attack holds buffers and streams).
	HTTP2WriteByteTimeout = 30 * time.Second
)

// http2Config returns the HTTP/2 settings of a public listener. The size
// of a header list (and so the CONTINUATION frames of one block) is bounded
// by the server's MaxHeaderBytes.
func http2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams:          HTTP2MaxConcurrentStreams,
		MaxReadFrameSize:              HTTP2MaxReadFrameSize,
		MaxReceiveBufferPerStream:     HTTP2MaxReceiveBufferPerStream,
		MaxReceiveBufferPerConnection: HTTP2MaxReceiveBufferPerConnection,
		MaxDecoderHeaderTableSize:     HTTP2MaxDecoderHeaderTableSize,
		WriteByteTimeout:              HTTP2WriteByteTimeout,
	}
}
