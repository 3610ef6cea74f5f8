package dashboard

import "net/http"

// Disabled is the /ui handler when the dashboard is not configured: one
// page saying how to turn it on.
func Disabled() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Dashboard off · Gatehouse</title></head>
<body><main><h1>The dashboard is off</h1>
<p>Turn it on in the configuration with <code>observability.dashboard.oidc</code> (sign-in with your identity provider),
or, for local development on a loopback admin listener, <code>observability.dashboard.insecure_local: true</code>.
See docs/observability.md.</p></main></body></html>
`))
	})
}
