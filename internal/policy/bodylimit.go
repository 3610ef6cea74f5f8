package policy

import (
	"net/http"
)

// LimitBody returns the step that refuses request bodies over limit bytes:
// at once (413) when Content-Length says so, otherwise by cutting the body
// off at the limit, which makes the proxy fail the request with 413 before
// the backend sees a complete request.
func LimitBody(limit int64) Step {
	return func(next Handler) Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if r.ContentLength > limit {
				return TooLarge(limit)
			}
			if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
				r.Body = http.MaxBytesReader(w, r.Body, limit)
			}
			return next.ServeHTTP(w, r)
		})
	}
}
