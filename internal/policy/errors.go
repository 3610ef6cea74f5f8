package policy

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error is a refusal or failure with everything needed to render it: the
// status, a problem type, a detail that is safe to show the client, the
// headers that go with it (WWW-Authenticate, Retry-After, Allow), a
// machine-readable reason for logs and metrics, and the cause, which only
// the log sees.
type Error struct {
	Status int
	// Type is the last part of the problem type URI (invalid-token).
	Type string
	// Title is the short, fixed summary of the problem type.
	Title string
	// Detail explains this occurrence to the client. It never contains
	// credentials or internal causes.
	Detail string
	// Reason is a stable label for logs and metrics (invalid_token:expired).
	Reason string
	// Header is added to the response.
	Header http.Header
	// Cause is logged, never sent.
	Cause error
	// Extensions are extra members of the problem document.
	Extensions map[string]any
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%d %s", e.Status, e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// AsError returns err as a *Error, wrapping unknown errors as an internal
// error whose cause is kept for the log.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{
		Status: http.StatusInternalServerError,
		Type:   "internal",
		Title:  "Internal error",
		Detail: "The gateway failed to handle the request.",
		Reason: "internal",
		Cause:  err,
	}
}

// BearerChallenge formats a WWW-Authenticate Bearer challenge (RFC 6750
// §3). Empty attributes are left out.
func BearerChallenge(realm, errCode, description, scope string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	attr := func(k, v string) {
		if v == "" {
			return
		}
		b.WriteString(sep)
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(quoteEscape(v))
		b.WriteByte('"')
		sep = ", "
	}
	attr("realm", realm)
	attr("error", errCode)
	attr("error_description", description)
	attr("scope", scope)
	return b.String()
}

// quoteEscape makes s safe inside a quoted-string: RFC 6750 limits
// error_description to printable ASCII without '"' and '\'.
func quoteEscape(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// NotFound is the error for a path no API or operation matches.
func NotFound() *Error {
	return &Error{Status: http.StatusNotFound, Type: "not-found", Title: "Not found",
		Detail: "No API operation matches this path.", Reason: "no_route"}
}

// MethodNotAllowed is the error for a path whose operations do not accept
// the method; allow lists the methods they do accept.
func MethodNotAllowed(allow string) *Error {
	return &Error{Status: http.StatusMethodNotAllowed, Type: "method-not-allowed", Title: "Method not allowed",
		Detail: "This path does not accept the method.", Reason: "method_not_allowed",
		Header: http.Header{"Allow": {allow}}}
}

// BadRequest is the error for a request the gateway refuses to interpret.
func BadRequest(reason, detail string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "bad-request", Title: "Bad request",
		Detail: detail, Reason: reason}
}

// TooLarge is the error for a request body over the API's limit.
func TooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Type: "body-too-large", Title: "Request body too large",
		Detail: fmt.Sprintf("The request body is larger than %d bytes.", limit), Reason: "body_too_large"}
}

// URITooLong is the error for a request target over the limit.
func URITooLong(limit int) *Error {
	return &Error{Status: http.StatusRequestURITooLong, Type: "uri-too-long", Title: "URI too long",
		Detail: fmt.Sprintf("The request target is longer than %d bytes.", limit), Reason: "uri_too_long"}
}

// RequestTimeout is the error for a request whose client did not send
// it (its body) in time.
func RequestTimeout(reason, detail string, cause error) *Error {
	return &Error{Status: http.StatusRequestTimeout, Type: "request-timeout", Title: "Request timeout",
		Detail: detail, Reason: reason, Cause: cause}
}

// BadGateway is the error for an upstream that failed to answer.
func BadGateway(cause error) *Error {
	return &Error{Status: http.StatusBadGateway, Type: "bad-gateway", Title: "Bad gateway",
		Detail: "The backend did not answer.", Reason: "upstream_error", Cause: cause}
}

// GatewayTimeout is the error for an upstream that answered too late.
func GatewayTimeout(cause error) *Error {
	return &Error{Status: http.StatusGatewayTimeout, Type: "gateway-timeout", Title: "Gateway timeout",
		Detail: "The backend did not answer in time.", Reason: "upstream_timeout", Cause: cause}
}

// Unavailable is the error for a dependency that cannot serve now.
func Unavailable(reason, detail string, cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: "unavailable", Title: "Service unavailable",
		Detail: detail, Reason: reason, Cause: cause}
}
