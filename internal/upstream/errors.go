package upstream

import (
	"fmt"
	"time"
)

// ErrorKind classifies why an upstream exchange failed.
type ErrorKind uint8

// Error kinds.
const (
	// ErrNoHealthyInstance: the pool has no instance that may get traffic.
	ErrNoHealthyInstance ErrorKind = iota + 1
	// ErrCircuitOpen: the backend's circuit breaker refused the request.
	ErrCircuitOpen
	// ErrConcurrencyLimit: the backend has max_concurrent_requests in flight.
	ErrConcurrencyLimit
	// ErrTimeout: no response headers before the attempt or request deadline.
	ErrTimeout
	// ErrConnect: the last attempt could not connect, or the connection
	// was closed or reset before any byte of a response.
	ErrConnect
	// ErrTransport: any other failure of the last attempt.
	ErrTransport
	// ErrRequestBodyTimeout: the attempt or request deadline passed while
	// the client's request body was still awaited. The client was too
	// slow, not the backend: nothing is counted against the instance.
	ErrRequestBodyTimeout
)

var errorKindNames = [...]string{"", "no_healthy_instance", "circuit_open", "concurrency_limit", "upstream_timeout", "upstream_connect_error", "upstream_error", "request_body_timeout"}

// String returns the kind's stable label, used as the refusal reason.
func (k ErrorKind) String() string {
	if int(k) < len(errorKindNames) && k > 0 {
		return errorKindNames[k]
	}
	return "unknown"
}

// Error is a failed upstream exchange. The gateway maps it to a problem
// response; Err (the transport's error) is for the log only.
type Error struct {
	Kind    ErrorKind
	Backend string
	// Instance is the ID of the instance of the last attempt, if any.
	Instance string
	// Attempts is the number of attempts made.
	Attempts int
	// RetryAfter says when an open circuit will let a probe through.
	RetryAfter time.Duration
	Err        error
}

// Error describes the failure for the log.
func (e *Error) Error() string {
	msg := fmt.Sprintf("backend %s: %s", e.Backend, e.Kind)
	if e.Instance != "" {
		msg += fmt.Sprintf(" (instance %s, %d attempts)", e.Instance, e.Attempts)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the transport's error.
func (e *Error) Unwrap() error { return e.Err }
