package backendtoken_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/backendtoken"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openKeys(t testing.TB, dir string, c *clock, algs ...string) *backendtoken.Keys {
	t.Helper()
	k, err := backendtoken.OpenKeys(backendtoken.KeysOptions{Dir: dir, Interval: 24 * time.Hour, Prepublish: time.Hour, ClockSkew: 30 * time.Second, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	if err := k.Use(context.Background(), algs...); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeys_FilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	openKeys(t, dir, &clock{t: time.Now()}, backendtoken.ES256, backendtoken.EdDSA)
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %v, %v", st.Mode().Perm(), err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 2 {
		t.Fatalf("%d key files", len(files))
	}
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", f, st.Mode().Perm())
		}
	}
}

// The timeline of one interval: the successor appears prepublish before
// it signs, signs at its time, and the predecessor leaves the JWKS once
// its last token (ttl) and the skew have passed.
func TestKeys_RotationTimeline(t *testing.T) {
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	k := openKeys(t, t.TempDir(), c, backendtoken.ES256)
	ctx := context.Background()
	m := backendtoken.NewMinter(k, backendtoken.MintOptions{Issuer: "https://gw", Audience: "be", Algorithm: backendtoken.ES256, TTL: time.Minute, Claims: backendtoken.ClaimGroups, Now: c.Now})
	first := k.KeyIDs()
	// Each call is a different caller (groups differ), so a new token.
	kidOf := func() string {
		v, err := m.HeaderValue(&identity.Principal{Subject: "s", Groups: []string{c.Now().String()}, Claims: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		return headerKid(t, v[0])
	}
	if len(first) != 1 || kidOf() != first[0] {
		t.Fatalf("first key %v", first)
	}
	c.Advance(22*time.Hour + 59*time.Minute)
	k.Rotate(ctx)
	if n := len(k.KeyIDs()); n != 1 {
		t.Fatalf("successor published too early: %d keys", n)
	}
	c.Advance(time.Minute) // 23h: prepublication starts
	k.Rotate(ctx)
	ids := k.KeyIDs()
	if len(ids) != 2 || kidOf() != first[0] {
		t.Fatalf("at 23h: keys %v, signing with %s", ids, kidOf())
	}
	c.Advance(time.Hour - time.Second) // the old key's last token, exp 24h+59s
	k.Rotate(ctx)
	if kidOf() != first[0] {
		t.Fatal("the successor signed before its time")
	}
	c.Advance(time.Second) // 24h: the successor signs
	k.Rotate(ctx)
	second := ids[1]
	if kidOf() != second || len(k.KeyIDs()) != 2 {
		t.Fatalf("at 24h: signing with %s, keys %v", kidOf(), k.KeyIDs())
	}
	c.Advance(time.Minute + 29*time.Second) // 1s before exp + skew
	k.Rotate(ctx)
	if len(k.KeyIDs()) != 2 {
		t.Fatal("old key removed before its last token expired plus skew")
	}
	c.Advance(2 * time.Second)
	k.Rotate(ctx)
	if got := k.KeyIDs(); len(got) != 1 || got[0] != second {
		t.Fatalf("old key kept: %v", got)
	}
}

// A corrupt or foreign file in the key directory is ignored, not fatal.
func TestKeys_IgnoresUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "junk.json"), []byte("{"), 0o600)
	k := openKeys(t, dir, &clock{t: time.Now()}, backendtoken.ES256)
	if len(k.KeyIDs()) != 1 {
		t.Fatalf("keys %v", k.KeyIDs())
	}
}

func headerKid(t *testing.T, v string) string {
	t.Helper()
	tok := strings.TrimPrefix(v, "Bearer ")
	var hdr struct {
		Kid string `json:"kid"`
		Typ string `json:"typ"`
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(decodeSegment(t, strings.Split(tok, ".")[0]), &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.Typ != backendtoken.TokenType {
		t.Fatalf("typ %q", hdr.Typ)
	}
	return hdr.Kid
}

func TestMinter_ClaimsAndExpiryCap(t *testing.T) {
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	k := openKeys(t, t.TempDir(), c, backendtoken.EdDSA)
	m := backendtoken.NewMinter(k, backendtoken.MintOptions{Issuer: "https://gw", Audience: "https://be", Algorithm: backendtoken.EdDSA,
		TTL: time.Minute, Claims: backendtoken.ClaimGroups | backendtoken.ClaimScope | backendtoken.ClaimIdP, Bearer: true, Now: c.Now})
	p := &identity.Principal{Credential: identity.CredentialJWT, Subject: `al"ice`, Issuer: "https://idp", Groups: []string{"a", "b"},
		Roles: []string{"not-selected"}, Scopes: []string{"r", "w"}, Claims: map[string]any{"azp": "web"}, Expires: c.Now().Add(20 * time.Second)}
	v, err := m.HeaderValue(p)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	tok := strings.TrimPrefix(v[0], "Bearer ")
	json.Unmarshal(decodeSegment(t, strings.Split(tok, ".")[1]), &claims)
	want := map[string]any{"iss": "https://gw", "aud": "https://be", "sub": `al"ice`, "client_id": "web", "idp": "https://idp", "scope": "r w"}
	for k, w := range want {
		if claims[k] != w {
			t.Errorf("%s = %v, want %v", k, claims[k], w)
		}
	}
	if claims["roles"] != nil || claims["consumer"] != nil {
		t.Errorf("unselected claims: %v", claims)
	}
	if exp := int64(claims["exp"].(float64)); exp != p.Expires.Unix() {
		t.Errorf("exp %d outlives the caller's credential (%d)", exp, p.Expires.Unix())
	}
}

// keysOf returns the kids of alg's keys: the files in dir, and the JWKS.
func keysOf(t *testing.T, k *backendtoken.Keys, alg string) (files, published []string) {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	rec := httptest.NewRecorder()
	k.ServeJWKS(rec, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	for _, key := range set.Keys {
		if key.Alg == alg {
			published = append(published, key.Kid)
		}
	}
	entries, err := os.ReadDir(k.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(k.Dir(), e.Name()))
		if os.IsNotExist(err) {
			continue // removed meanwhile by the rotation loop
		}
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Alg string `json:"alg"`
		}
		if json.Unmarshal(data, &f) == nil && f.Alg == alg {
			files = append(files, strings.TrimSuffix(e.Name(), ".json"))
		}
	}
	return files, published
}

// An algorithm no longer used loses every key, its active one too, once
// the last token each signed has expired and the skew has passed since
// it went out of use: from the JWKS and from the disk. A key generated by
// a configuration that was then refused, which never signed, leaves once
// the skew has passed.
func TestKeys_AnAlgorithmOutOfUseLosesItsKeys(t *testing.T) {
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	k := openKeys(t, dir, c, backendtoken.ES256, backendtoken.EdDSA)
	ctx := context.Background()
	m := backendtoken.NewMinter(k, backendtoken.MintOptions{Issuer: "https://gw", Audience: "be", Algorithm: backendtoken.EdDSA, TTL: time.Minute, Claims: backendtoken.ClaimGroups, Now: c.Now})
	if _, err := m.HeaderValue(&identity.Principal{Subject: "s", Claims: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	k.Retain(backendtoken.ES256) // exp is 1m away, the skew 30s
	c.Advance(time.Minute + 29*time.Second)
	k.Rotate(ctx)
	if files, pub := keysOf(t, k, backendtoken.EdDSA); len(files) != 1 || len(pub) != 1 {
		t.Fatalf("EdDSA key removed before its last token expired plus skew: files %v, JWKS %v", files, pub)
	}
	c.Advance(2 * time.Second)
	k.Rotate(ctx)
	if files, pub := keysOf(t, k, backendtoken.EdDSA); len(files) != 0 || len(pub) != 0 {
		t.Fatalf("EdDSA key kept: files %v, JWKS %v", files, pub)
	}
	if files, pub := keysOf(t, k, backendtoken.ES256); len(files) != 1 || len(pub) != 1 {
		t.Fatalf("ES256 keys: files %v, JWKS %v", files, pub)
	}

	// A refused configuration's key: it never signed.
	if err := k.Use(ctx, backendtoken.EdDSA); err != nil {
		t.Fatal(err)
	}
	k.Retain(backendtoken.ES256)
	c.Advance(29 * time.Second)
	k.Rotate(ctx)
	if files, _ := keysOf(t, k, backendtoken.EdDSA); len(files) != 1 {
		t.Fatalf("a key that never signed removed before the skew passed: %v", files)
	}
	// The rotation loop, woken by Retain, removes it once due.
	c.Advance(2 * time.Second)
	k.Retain(backendtoken.ES256)
	for i := 0; ; i++ {
		files, pub := keysOf(t, k, backendtoken.EdDSA)
		if len(files) == 0 && len(pub) == 0 {
			break
		}
		if i == 100 {
			t.Fatalf("the rotation loop kept the refused configuration's key: files %v, JWKS %v", files, pub)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Put back in use, the algorithm gets a key that signs at once.
	if err := k.Use(ctx, backendtoken.EdDSA); err != nil {
		t.Fatal(err)
	}
	if _, err := m.HeaderValue(&identity.Principal{Subject: "t", Claims: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
}

// Keys found on disk of an algorithm the configuration does not use are
// assumed to have signed until the start plus the longest token lifetime;
// they leave after that and the skew.
func TestKeys_LoadedKeysOfAnUnusedAlgorithmLeave(t *testing.T) {
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	k := openKeys(t, dir, c, backendtoken.ES256, backendtoken.EdDSA)
	k.Close()
	k = openKeys(t, dir, c, backendtoken.ES256) // a restart; EdDSA no longer used
	ctx := context.Background()
	c.Advance(backendtoken.MaxTokenTTL + 29*time.Second)
	k.Rotate(ctx)
	if files, _ := keysOf(t, k, backendtoken.EdDSA); len(files) != 1 {
		t.Fatalf("a loaded EdDSA key removed before start + 1h + skew: %v", files)
	}
	c.Advance(2 * time.Second)
	k.Rotate(ctx)
	if files, pub := keysOf(t, k, backendtoken.EdDSA); len(files) != 0 || len(pub) != 0 {
		t.Fatalf("loaded EdDSA key kept: files %v, JWKS %v", files, pub)
	}
}

// A rotation that cannot write its successor (the key directory gone, the
// disk full) does not make Use fail while the algorithm's key in service
// still signs, so reloads go on; an algorithm with no key that signs does
// fail.
func TestKeys_UseFailsOnlyWithoutASigningKey(t *testing.T) {
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := filepath.Join(t.TempDir(), "keys")
	k := openKeys(t, dir, c, backendtoken.ES256)
	k.Close() // no rotation loop: the test rotates
	ctx := context.Background()
	c.Advance(23 * time.Hour) // the successor is due
	if err := os.Rename(dir, dir+".gone"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := k.Rotate(ctx); err == nil {
		t.Fatal("Rotate wrote a key into a file")
	}
	if err := k.Use(ctx, backendtoken.ES256); err != nil {
		t.Fatalf("Use with the key in service still signing: %v", err)
	}
	if err := k.Use(ctx, backendtoken.EdDSA); err == nil {
		t.Fatal("Use of an algorithm whose first key cannot be written succeeded")
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir+".gone", dir); err != nil {
		t.Fatal(err)
	}
	if err := k.Use(ctx, backendtoken.ES256, backendtoken.EdDSA); err != nil {
		t.Fatal(err)
	}
	if n := len(k.KeyIDs()); n != 3 {
		t.Fatalf("%d keys once the directory is back, want ES256's two and EdDSA's", n)
	}
}
