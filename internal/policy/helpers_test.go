package policy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// okHandler records that the request got through.
type okHandler struct{ calls int }

func (h *okHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	h.calls++
	w.WriteHeader(http.StatusOK)
	return nil
}

// request builds a request with an exchange (client IP ip) and, when p is
// not nil, a principal.
func request(method, target, ip string, p *identity.Principal, hdr map[string]string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	x := &Exchange{Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(), Record: &Record{}}
	if ip != "" {
		x.ClientIP = netip.MustParseAddr(ip)
	}
	ctx := WithExchange(r.Context(), x)
	if p != nil {
		ctx = WithPrincipal(ctx, p)
	}
	return r.WithContext(ctx)
}

// run passes r through step and returns the recorder, the error and
// whether the next handler was called.
func run(step Step, r *http.Request) (*httptest.ResponseRecorder, *Error, bool) {
	next := &okHandler{}
	w := httptest.NewRecorder()
	err := Chain(next, step).ServeHTTP(w, r)
	var pe *Error
	if err != nil {
		pe = AsError(err)
	}
	return w, pe, next.calls > 0
}

func consumer(name string) *identity.Principal {
	return identity.NewStaticPrincipal(identity.CredentialAPIKey, name, name, nil, nil, nil)
}

var _ = context.Background
