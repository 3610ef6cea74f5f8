package backendtoken_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/backendtoken"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

var (
	cryptoSHA256 = crypto.SHA256
	b64          = base64.RawURLEncoding.EncodeToString
)

// memShare is a store.PublishedKeys in memory, as the gateways share one;
// fail makes every call fail, as an unreachable database does.
type memShare struct {
	mu   sync.Mutex
	keys map[string]store.PublishedKey
	fail bool
	// lists counts ListPublishedKeys calls, failed ones included.
	lists int
}

var errDown = errors.New("store unreachable")

func newMemShare() *memShare { return &memShare{keys: map[string]store.PublishedKey{}} }

func (m *memShare) setFail(v bool) { m.mu.Lock(); m.fail = v; m.mu.Unlock() }

func (m *memShare) PutPublishedKeys(_ context.Context, keys []store.PublishedKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errDown
	}
	for _, k := range keys {
		if old, ok := m.keys[k.KID]; ok && old.Expires.After(k.Expires) {
			k.Expires = old.Expires
		}
		m.keys[k.KID] = k
	}
	return nil
}

func (m *memShare) DeletePublishedKeys(_ context.Context, kids []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errDown
	}
	for _, kid := range kids {
		delete(m.keys, kid)
	}
	return nil
}

func (m *memShare) ListPublishedKeys(_ context.Context, now time.Time) ([]store.PublishedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lists++
	if m.fail {
		return nil, errDown
	}
	var out []store.PublishedKey
	for _, k := range m.keys {
		if k.Expires.After(now) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b store.PublishedKey) int { return strings.Compare(a.KID, b.KID) })
	return out, nil
}

func (m *memShare) DeleteExpiredPublishedKeys(_ context.Context, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return 0, errDown
	}
	n := 0
	for kid, k := range m.keys {
		if !k.Expires.After(now) {
			delete(m.keys, kid)
			n++
		}
	}
	return n, nil
}

func (m *memShare) listCalls() int { m.mu.Lock(); defer m.mu.Unlock(); return m.lists }

func (m *memShare) kids() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for kid := range m.keys {
		out = append(out, kid)
	}
	slices.Sort(out)
	return out
}

// openShared opens keys that publish to share. The sync loop's interval is
// an hour, so that the tests call Sync themselves at the moments they
// choose (the clock is theirs too).
func openShared(t *testing.T, share store.PublishedKeys, c *clock, logger *slog.Logger, algs ...string) *backendtoken.Keys {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	k, err := backendtoken.OpenKeys(backendtoken.KeysOptions{Dir: t.TempDir(), Interval: 24 * time.Hour, Prepublish: time.Hour,
		ClockSkew: 30 * time.Second, Now: c.Now, Logger: logger, Share: share, SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	mem, _ := share.(*memShare)
	var before int
	if mem != nil {
		before = mem.listCalls()
	}
	if err := k.Use(context.Background(), algs...); err != nil {
		t.Fatal(err)
	}
	// The new keys wake the sync loop. Its Sync is let read the store
	// before the test goes on; Syncs run one at a time, so the test's own
	// wait for it to end, and it does not run in the middle of the test,
	// at a moment the test did not choose.
	for i := 0; mem != nil && mem.listCalls() == before; i++ {
		if i == 5000 {
			t.Fatal("the sync loop did not sync the new keys within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	return k
}

func syncAll(t *testing.T, keys ...*backendtoken.Keys) {
	t.Helper()
	for _, k := range keys {
		if err := k.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// jwksOf returns the JWKS k serves.
func jwksOf(t *testing.T, k *backendtoken.Keys) jose.JSONWebKeySet {
	t.Helper()
	rec := httptest.NewRecorder()
	k.ServeJWKS(rec, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	return set
}

func servedKIDs(t *testing.T, k *backendtoken.Keys) []string {
	t.Helper()
	var kids []string
	for _, key := range jwksOf(t, k).Keys {
		kids = append(kids, key.KeyID)
	}
	slices.Sort(kids)
	return kids
}

func sorted(s ...[]string) []string {
	var out []string
	for _, x := range s {
		out = append(out, x...)
	}
	slices.Sort(out)
	return out
}

// mintWith mints a token with k for a new caller.
func mintWith(t *testing.T, k *backendtoken.Keys, c *clock, alg string) string {
	t.Helper()
	m := backendtoken.NewMinter(k, backendtoken.MintOptions{Issuer: "https://gw", Audience: "be", Algorithm: alg, TTL: time.Minute, Claims: backendtoken.ClaimGroups, Now: c.Now})
	v, err := m.HeaderValue(&identity.Principal{Subject: "s", Claims: map[string]any{}})
	if err != nil || len(v) != 1 {
		t.Fatalf("minting: %v %v", v, err)
	}
	return strings.TrimPrefix(v[0], "Bearer ")
}

// verifies reports whether a backend holding the JWKS of via verifies
// token.
func verifies(t *testing.T, via *backendtoken.Keys, token string) bool {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	kid := jws.Signatures[0].Header.KeyID
	for _, key := range jwksOf(t, via).Keys {
		if key.KeyID == kid {
			_, err := jws.Verify(key)
			return err == nil
		}
	}
	return false
}

// Two gateways on one store each serve both gateways' keys, so a backend
// that fetched the JWKS from either verifies a token minted by the other;
// no private key reaches the store.
func TestShare_EachGatewayServesEveryGatewaysKeys(t *testing.T) {
	share := newMemShare()
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := openShared(t, share, c, nil, backendtoken.ES256, backendtoken.EdDSA)
	b := openShared(t, share, c, nil, backendtoken.ES256)
	syncAll(t, a, b, a)
	want := sorted(a.KeyIDs(), b.KeyIDs())
	if len(want) != 3 {
		t.Fatalf("kids %v", want)
	}
	if got := share.kids(); !slices.Equal(got, want) {
		t.Fatalf("the store holds %v, want %v", got, want)
	}
	for name, k := range map[string]*backendtoken.Keys{"a": a, "b": b} {
		if got := servedKIDs(t, k); !slices.Equal(got, want) {
			t.Fatalf("gateway %s serves %v, want %v", name, got, want)
		}
	}
	tokB := mintWith(t, b, c, backendtoken.ES256)
	if !verifies(t, a, tokB) {
		t.Fatal("a token minted by b does not verify with a's JWKS")
	}
	tokA := mintWith(t, a, c, backendtoken.EdDSA)
	if !verifies(t, b, tokA) {
		t.Fatal("a token minted by a does not verify with b's JWKS")
	}
	share.mu.Lock()
	defer share.mu.Unlock()
	for kid, k := range share.keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(k.JWK); err != nil || !jwk.IsPublic() {
			t.Fatalf("key %s went to the store as %s (%v): only public keys may", kid, k.JWK, err)
		}
		if bytes.Contains(k.JWK, []byte(`"d"`)) {
			t.Fatalf("key %s went to the store with a private member: %s", kid, k.JWK)
		}
	}
}

// A key retired by one gateway leaves the store, and then the others'
// JWKS, once its last token has expired; its successor, prepublished,
// reaches the others before it signs.
func TestShare_RotationReachesTheOthers(t *testing.T) {
	share := newMemShare()
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := openShared(t, share, c, nil, backendtoken.ES256)
	b := openShared(t, share, c, nil, backendtoken.ES256)
	syncAll(t, a, b)
	first := a.KeyIDs()[0]
	ctx := context.Background()

	// 23 h: a's successor is published (prepublish 1 h before it signs).
	c.Advance(23 * time.Hour)
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if len(a.KeyIDs()) != 2 {
		t.Fatalf("a has %v after 23 h", a.KeyIDs())
	}
	successor := a.KeyIDs()[1]
	syncAll(t, a, b)
	if !slices.Contains(servedKIDs(t, b), successor) {
		t.Fatalf("b serves %v: a's successor %s is missing an hour before it signs", servedKIDs(t, b), successor)
	}
	// 24 h: the successor signs; the first key stays until its last token
	// and the skew have passed.
	c.Advance(time.Hour)
	syncAll(t, a, b)
	if !slices.Contains(servedKIDs(t, b), first) {
		t.Fatal("a's retired key left b's JWKS while its tokens may be valid")
	}
	c.Advance(time.Minute)
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(a.KeyIDs(), first) {
		t.Fatalf("a kept its retired key: %v", a.KeyIDs())
	}
	syncAll(t, a, b)
	if slices.Contains(share.kids(), first) {
		t.Fatalf("the store kept a's retired key: %v", share.kids())
	}
	if slices.Contains(servedKIDs(t, b), first) {
		t.Fatalf("b still serves a's retired key: %v", servedKIDs(t, b))
	}
	if !slices.Contains(servedKIDs(t, b), successor) {
		t.Fatal("b lost a's successor")
	}
}

// A gateway that stops leaves its keys published for the tokens it
// minted: the others serve them until the lease (MaxTokenTTL + skew + two
// sync intervals after its last sync) runs out, then drop them. A store
// that fails meanwhile changes nothing of that: the keys last read are
// served until each expires.
func TestShare_StoppedGatewaysKeysStayUntilTheirTokensExpire(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	share := newMemShare()
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := openShared(t, share, c, nil, backendtoken.ES256)
	b := openShared(t, share, c, logger, backendtoken.ES256)
	syncAll(t, a, b)
	kidA := a.KeyIDs()[0]
	a.Close()

	share.setFail(true)
	c.Advance(backendtoken.MaxTokenTTL)
	for range 3 {
		if err := b.Sync(context.Background()); !errors.Is(err, errDown) {
			t.Fatalf("sync with the store down: %v", err)
		}
	}
	if !slices.Contains(servedKIDs(t, b), kidA) {
		t.Fatal("with the store down, b dropped a stopped gateway's key before its lease ran out")
	}
	if n := strings.Count(logs.String(), "sharing the backend token signing keys"); n != 1 {
		t.Fatalf("three failed syncs within a minute logged %d times, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), `"d"`) {
		t.Fatal("a private key member in the log")
	}
	// Past the lease (1 h + 30 s skew + 2 h of sync intervals + 5 s here).
	c.Advance(2*time.Hour + time.Minute)
	_ = b.Sync(context.Background())
	if slices.Contains(servedKIDs(t, b), kidA) {
		t.Fatal("b serves a stopped gateway's key past its lease while the store is down")
	}
	share.setFail(false)
	syncAll(t, b)
	if slices.Contains(servedKIDs(t, b), kidA) {
		t.Fatalf("a stopped gateway's key past its lease is served: %v", servedKIDs(t, b))
	}
	// Its row goes an hour after its expiry, so that a gateway whose
	// clock runs ahead does not remove the others' keys early.
	if !slices.Contains(share.kids(), kidA) {
		t.Fatal("a key's row was removed at its expiry, not an hour after")
	}
	c.Advance(time.Hour)
	syncAll(t, b)
	if slices.Contains(share.kids(), kidA) {
		t.Fatalf("a stopped gateway's key an hour past its lease is still stored: %v", share.kids())
	}
	if !strings.Contains(logs.String(), "works again") {
		t.Fatalf("the recovery was not logged:\n%s", logs.String())
	}
}

// Only what a gateway could have published is served: a public P-256 or
// Ed25519 key named by its thumbprint, for the algorithm it says. A
// private key written to the store is never served; nor are extra JSON
// members.
func TestShare_OnlyValidPublicKeysAreServed(t *testing.T) {
	share := newMemShare()
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	exp := c.Now().Add(time.Hour)
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kidOf := func(key any) string {
		jwk := jose.JSONWebKey{Key: key}
		tp, err := jwk.Thumbprint(cryptoSHA256)
		if err != nil {
			t.Fatal(err)
		}
		return b64(tp)
	}
	good := kidOf(&priv.PublicKey)
	pubJSON := func(key any, kid, alg string) []byte {
		b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: "sig"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(pubJSON(&priv.PublicKey, good, "ES256"), &m); err != nil {
		t.Fatal(err)
	}
	m["note"] = "https://evil.example/"
	withExtra, _ := json.Marshal(m)
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	third, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fourth, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad := []store.PublishedKey{
		{KID: kidOf(&fourth.PublicKey), Alg: "ES256", JWK: pubJSON(fourth, kidOf(&fourth.PublicKey), "ES256")}, // private
		{KID: "not-the-thumbprint", Alg: "ES256", JWK: pubJSON(&third.PublicKey, "not-the-thumbprint", "ES256")},
		{KID: kidOf(&third.PublicKey), Alg: "EdDSA", JWK: pubJSON(&third.PublicKey, kidOf(&third.PublicKey), "")},
		{KID: kidOf(&other.PublicKey), Alg: "ES256", JWK: pubJSON(&other.PublicKey, kidOf(&other.PublicKey), "ES256")}, // P-384
		{KID: "garbage", Alg: "ES256", JWK: []byte(`{not json`)},
	}
	for i := range bad {
		bad[i].Activates, bad[i].Expires = c.Now(), exp
	}
	var logs bytes.Buffer
	if err := share.PutPublishedKeys(context.Background(), append(bad, store.PublishedKey{KID: good, Alg: "ES256", JWK: withExtra, Activates: c.Now(), Expires: exp})); err != nil {
		t.Fatal(err)
	}
	k := openShared(t, share, c, slog.New(slog.NewTextHandler(&logs, nil)), backendtoken.ES256)
	err := k.Sync(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ignoring 5 published keys") {
		t.Fatalf("sync: %v", err)
	}
	set := jwksOf(t, k)
	var served []string
	for _, key := range set.Keys {
		served = append(served, key.KeyID)
		if !key.IsPublic() {
			t.Fatalf("a private key is served: %s", key.KeyID)
		}
	}
	want := sorted(k.KeyIDs(), []string{good})
	slices.Sort(served)
	if !slices.Equal(served, want) {
		t.Fatalf("served %v, want %v", served, want)
	}
	rec := httptest.NewRecorder()
	k.ServeJWKS(rec, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	if strings.Contains(rec.Body.String(), "evil.example") {
		t.Fatalf("an extra member of a stored key reached the JWKS: %s", rec.Body.String())
	}
	if strings.Contains(logs.String(), `"d":`) {
		t.Fatalf("a private key member was logged:\n%s", logs.String())
	}
}
