package h1

import (
	"context"
	"net/http/httptrace"
	"net/textproto"
)

// Informational receives the informational (1xx) responses of a round
// trip, other than 100 Continue, before its final response: what an
// httptrace.ClientTrace's Got1xxResponse does, without a context value
// and a closure made for every request. A request's context carries one
// when its Value(InformationalKey) returns it (a context type of the
// caller's own can answer that key itself). An error ends the round trip.
type Informational interface {
	Got1xxResponse(code int, header textproto.MIMEHeader) error
}

// InformationalKeyType is the type of InformationalKey. A context that answers the key itself
// tells it by a type switch: comparing a key with InformationalKey calls the
// runtime's interface equality.
type InformationalKeyType struct{}

// InformationalKey is the context key under which a request's context
// carries an Informational.
var InformationalKey any = InformationalKeyType{}

// InformationalFrom returns what receives ctx's 1xx responses: its
// Informational, else its httptrace.ClientTrace's Got1xxResponse, else
// nil.
func InformationalFrom(ctx context.Context) func(code int, header textproto.MIMEHeader) error {
	if in, ok := ctx.Value(InformationalKey).(Informational); ok {
		return in.Got1xxResponse
	}
	if tr := httptrace.ContextClientTrace(ctx); tr != nil && tr.Got1xxResponse != nil {
		return tr.Got1xxResponse
	}
	return nil
}
