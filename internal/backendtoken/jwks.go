package backendtoken

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// JWKSContentType is the media type of a JWK set (RFC 7517 §8.5).
const JWKSContentType = "application/jwk-set+json"

// maxJWKSAge caps how long a JWKS response may be cached.
const maxJWKSAge = 5 * time.Minute

// CacheMaxAge is how long a backend may cache the JWKS: a quarter of the
// prepublication period, at most 5 minutes and at least 1 second, so that
// a cache refreshed on schedule knows a new key well before it signs.
func (k *Keys) CacheMaxAge() time.Duration {
	age := min(k.tuning.Load().prepublish/4, maxJWKSAge)
	return max(age, time.Second)
}

// ServeJWKS writes the public keys: the active key of each algorithm, its
// prepublished successor and the retired keys whose tokens may still be
// valid. It answers GET and HEAD (the caller checks the method), with an
// ETag and a short max-age.
func (k *Keys) ServeJWKS(w http.ResponseWriter, r *http.Request) {
	st := k.state.Load()
	serveCached(w, r, JWKSContentType, st.jwks, st.etag, k.CacheMaxAge())
}

// serveCached writes a small public document with cache validators.
func serveCached(w http.ResponseWriter, r *http.Request, contentType string, body []byte, etag string, age time.Duration) {
	h := w.Header()
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(age/time.Second)))
	h.Set("Etag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// Discovery is a minimal OpenID Provider Metadata document: enough for a
// backend library to find the gateway's keys from its issuer name.
type Discovery struct {
	body []byte
	etag string
	keys *Keys
}

// NewDiscovery prepares the metadata of issuer.
func NewDiscovery(keys *Keys, issuer, jwksURI string, algs []string) *Discovery {
	body, err := json.Marshal(struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}{issuer, jwksURI, algs})
	if err != nil {
		panic(err)
	}
	return &Discovery{body: body, etag: `"` + strconv.FormatUint(fnv64(body), 36) + `"`, keys: keys}
}

// ServeHTTP writes the metadata.
func (d *Discovery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveCached(w, r, "application/json", d.body, d.etag, d.keys.CacheMaxAge())
}

func fnv64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
