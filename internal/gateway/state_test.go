package gateway

import (
	"context"
	"testing"
	"unsafe"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// TestRequestStateSize: the request's state, allocated once per request,
// fills its size class (3072 bytes, with the allocator's 8-byte header),
// so that a field added to it, or a buffer grown, is a decision: it
// takes the next class (3200), more bytes to clear per request.
func TestRequestStateSize(t *testing.T) {
	const class, header = 3072, 8
	if n := unsafe.Sizeof(request{}); n+header > class {
		t.Errorf("the request's state is %d bytes, over its %d-byte size class: see forwardState's buffers", n, class)
	}
}

// TestExchangeOfAndPrincipalOf: the shortcuts for the request's state
// answer what policy.ExchangeFrom, PrincipalFrom and UpstreamPathFrom
// answer, for the state itself and for contexts derived from it.
func TestExchangeOfAndPrincipalOf(t *testing.T) {
	alice := &identity.Principal{Subject: "alice"}
	bob := &identity.Principal{Subject: "bob"}
	for _, recorded := range []*identity.Principal{nil, alice} {
		q := &request{Context: context.Background()}
		q.x.Record = &q.rec
		q.rec.Principal = recorded
		derived := context.WithValue(q, struct{ k int }{1}, "v")
		withBob := policy.WithPrincipal(q, bob)
		withUp := context.WithValue(q, policy.UpstreamPathKey, policy.UpstreamPath{Path: "/up"})
		for name, ctx := range map[string]context.Context{"the state": q, "derived": derived, "with a principal of its own": withBob, "with an upstream path": withUp} {
			if got, want := exchangeOf(ctx), policy.ExchangeFrom(ctx); got != want || got != &q.x {
				t.Errorf("%s, recorded %v: exchangeOf %p, ExchangeFrom %p, the state's %p", name, recorded, got, want, &q.x)
			}
			if got, want := principalOf(ctx), policy.PrincipalFrom(ctx); got != want {
				t.Errorf("%s, recorded %v: principalOf %v, PrincipalFrom %v", name, recorded, got, want)
			}
			gotUp, gotOK := upstreamPathOf(ctx)
			wantUp, wantOK := policy.UpstreamPathFrom(ctx)
			if gotUp != wantUp || gotOK != wantOK {
				t.Errorf("%s: upstreamPathOf %v %v, UpstreamPathFrom %v %v", name, gotUp, gotOK, wantUp, wantOK)
			}
		}
	}
}
