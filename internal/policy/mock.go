package policy

import (
	"net/http"
	"strconv"
)

// MockOptions are a fixed response, prepared at compile time.
type MockOptions struct {
	Status  int
	Header  http.Header
	Body    []byte
	Observe func(outcome string)
}

// Mock returns a handler that answers every request with the fixed
// response; it replaces the proxy, so the backend is never called.
func Mock(o MockOptions) Handler {
	length := strconv.Itoa(len(o.Body))
	return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		observe(o.Observe, "allowed")
		h := w.Header()
		for k, vs := range o.Header {
			h[k] = vs
		}
		h["Content-Length"] = []string{length}
		w.WriteHeader(o.Status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(o.Body)
		}
		return nil
	})
}
