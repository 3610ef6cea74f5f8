package identity_test

import (
	"context"
	"encoding/base64"
	"runtime"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/securitytest/seedcorpus"
)

// fuzzIssuer is the iss of the FuzzVerify environment, fixed so that
// committed seeds reach past the issuer check.
const fuzzIssuer = "https://issuer.fuzz.test"

// compactJWS assembles a compact JWS from raw header and payload JSON (not
// re-encoded, so duplicate keys and odd numbers survive) and a signature.
func compactJWS(header, payload, sig string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString([]byte(sig))
}

// joseCorpus is the JOSE attack corpus behind FuzzVerify's seeds and
// TestVerify_JOSECorpusIsRefused: tokens no honest issuer makes.
func joseCorpus() map[string]string {
	claims := `{"iss":"` + fuzzIssuer + `","sub":"alice","aud":"` + audience + `","exp":4102444800,"iat":1750000000}`
	withClaims := func(extra string) string {
		return strings.TrimSuffix(claims, "}") + "," + extra + "}"
	}
	rsa := `{"alg":"RS256","kid":"k","typ":"at+jwt"}`
	deep := strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2000)
	c := map[string]string{
		"alg_none":              compactJWS(`{"alg":"none"}`, claims, ""),
		"alg_None":              compactJWS(`{"alg":"None"}`, claims, ""),
		"alg_NONE":              compactJWS(`{"alg":"NONE"}`, claims, ""),
		"alg_nOnE_sig":          compactJWS(`{"alg":"nOnE"}`, claims, "sig"),
		"alg_empty":             compactJWS(`{"alg":""}`, claims, "sig"),
		"alg_missing":           compactJWS(`{"kid":"k"}`, claims, "sig"),
		"alg_null":              compactJWS(`{"alg":null}`, claims, "sig"),
		"alg_array":             compactJWS(`{"alg":["RS256"]}`, claims, "sig"),
		"alg_number":            compactJWS(`{"alg":256}`, claims, "sig"),
		"alg_duplicate":         compactJWS(`{"alg":"RS256","alg":"none"}`, claims, ""),
		"alg_lowercase":         compactJWS(`{"alg":"rs256"}`, claims, "sig"),
		"alg_trailing_space":    compactJWS(`{"alg":"RS256 "}`, claims, "sig"),
		"hs256":                 compactJWS(`{"alg":"HS256","kid":"k"}`, claims, "0123456789abcdef0123456789abcdef"),
		"hs384":                 compactJWS(`{"alg":"HS384"}`, claims, "sig"),
		"hs512":                 compactJWS(`{"alg":"HS512"}`, claims, "sig"),
		"es256_on_rsa_key":      compactJWS(`{"alg":"ES256","kid":"k"}`, claims, strings.Repeat("s", 64)),
		"ps256":                 compactJWS(`{"alg":"PS256"}`, claims, strings.Repeat("s", 256)),
		"eddsa":                 compactJWS(`{"alg":"EdDSA"}`, claims, strings.Repeat("s", 64)),
		"es256k":                compactJWS(`{"alg":"ES256K"}`, claims, "sig"),
		"jwe_shape":             compactJWS(`{"alg":"RSA-OAEP","enc":"A256GCM"}`, claims, "sig") + ".iv.tag",
		"crit_exp":              compactJWS(`{"alg":"RS256","crit":["exp"],"exp":1}`, claims, "sig"),
		"crit_b64":              compactJWS(`{"alg":"RS256","crit":["b64"],"b64":false}`, claims, "sig"),
		"crit_empty":            compactJWS(`{"alg":"RS256","crit":[]}`, claims, "sig"),
		"crit_string":           compactJWS(`{"alg":"RS256","crit":"x"}`, claims, "sig"),
		"crit_number":           compactJWS(`{"alg":"RS256","crit":[1]}`, claims, "sig"),
		"crit_unknown":          compactJWS(`{"alg":"RS256","crit":["urn:x"],"urn:x":true}`, claims, "sig"),
		"embedded_jwk_oct":      compactJWS(`{"alg":"RS256","jwk":{"kty":"oct","k":"AAAA"}}`, claims, "sig"),
		"embedded_jwk_rsa":      compactJWS(`{"alg":"RS256","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`, claims, "sig"),
		"jku_http":              compactJWS(`{"alg":"RS256","jku":"http://127.0.0.1:1/jwks"}`, claims, "sig"),
		"jku_file":              compactJWS(`{"alg":"RS256","jku":"file:///etc/passwd"}`, claims, "sig"),
		"x5u":                   compactJWS(`{"alg":"RS256","x5u":"http://127.0.0.1:1/cert.pem"}`, claims, "sig"),
		"x5c_garbage":           compactJWS(`{"alg":"RS256","x5c":["bm90IGEgY2VydA=="]}`, claims, "sig"),
		"kid_traversal":         compactJWS(`{"alg":"RS256","kid":"../../../../etc/passwd"}`, claims, "sig"),
		"kid_dev_zero":          compactJWS(`{"alg":"RS256","kid":"/dev/zero"}`, claims, "sig"),
		"kid_sql":               compactJWS(`{"alg":"RS256","kid":"' OR 1=1 --"}`, claims, "sig"),
		"kid_crlf":              compactJWS(`{"alg":"RS256","kid":"a\r\nlevel=ERROR msg=forged"}`, claims, "sig"),
		"kid_nul":               compactJWS(`{"alg":"RS256","kid":"k\u0000x"}`, claims, "sig"),
		"kid_huge":              compactJWS(`{"alg":"RS256","kid":"`+strings.Repeat("k", 10<<10)+`"}`, claims, "sig"),
		"kid_number":            compactJWS(`{"alg":"RS256","kid":7}`, claims, "sig"),
		"kid_object":            compactJWS(`{"alg":"RS256","kid":{"a":1}}`, claims, "sig"),
		"kid_empty":             compactJWS(`{"alg":"RS256","kid":""}`, claims, "sig"),
		"typ_jwt":               compactJWS(`{"alg":"RS256","typ":"JWT"}`, claims, "sig"),
		"typ_number":            compactJWS(`{"alg":"RS256","typ":7}`, claims, "sig"),
		"header_array":          compactJWS(`[]`, claims, "sig"),
		"header_string":         compactJWS(`"RS256"`, claims, "sig"),
		"header_deep":           compactJWS(`{"alg":"RS256","x":`+deep+`}`, claims, "sig"),
		"header_not_json":       compactJWS(`{alg:RS256}`, claims, "sig"),
		"header_trailing":       compactJWS(`{"alg":"RS256"}{"alg":"none"}`, claims, "sig"),
		"claims_exp_string":     compactJWS(rsa, withClaims(`"nbf":"1700000000"`), "sig"),
		"claims_exp_overflow":   compactJWS(rsa, `{"iss":"`+fuzzIssuer+`","sub":"a","aud":"`+audience+`","exp":1e309}`, "sig"),
		"claims_exp_huge":       compactJWS(rsa, `{"iss":"`+fuzzIssuer+`","sub":"a","aud":"`+audience+`","exp":99999999999999999999999999}`, "sig"),
		"claims_exp_negative":   compactJWS(rsa, `{"iss":"`+fuzzIssuer+`","sub":"a","aud":"`+audience+`","exp":-1}`, "sig"),
		"claims_exp_null":       compactJWS(rsa, `{"iss":"`+fuzzIssuer+`","sub":"a","aud":"`+audience+`","exp":null}`, "sig"),
		"claims_exp_bool":       compactJWS(rsa, `{"iss":"`+fuzzIssuer+`","sub":"a","aud":"`+audience+`","exp":true}`, "sig"),
		"claims_iss_array":      compactJWS(rsa, `{"iss":["`+fuzzIssuer+`"],"sub":"a","aud":"`+audience+`","exp":4102444800}`, "sig"),
		"claims_iss_duplicate":  compactJWS(rsa, `{"iss":"https://evil.test","iss":"`+fuzzIssuer+`","sub":"a","aud":"`+audience+`","exp":4102444800}`, "sig"),
		"claims_iss_null":       compactJWS(rsa, `{"iss":null,"sub":"a","exp":4102444800}`, "sig"),
		"claims_aud_number":     compactJWS(rsa, withClaims(`"aud":7`), "sig"),
		"claims_aud_nested":     compactJWS(rsa, withClaims(`"aud":[["`+audience+`"]]`), "sig"),
		"claims_sub_array":      compactJWS(rsa, withClaims(`"sub":["alice"]`), "sig"),
		"claims_groups_deep":    compactJWS(rsa, withClaims(`"groups":`+deep), "sig"),
		"claims_unicode_escape": compactJWS(rsa, withClaims(`"sub":"\u0000admin"`), "sig"),
		"claims_array":          compactJWS(rsa, `[]`, "sig"),
		"claims_trailing_data":  compactJWS(rsa, claims+`{}`, "sig"),
		"claims_not_json":       compactJWS(rsa, `not json`, "sig"),
		"empty":                 "",
		"one_dot":               ".",
		"two_dots":              "..",
		"three_dots":            "...",
		"many_dots":             strings.Repeat(".", 5000),
		"five_parts":            "a.b.c.d.e",
		"padded_base64":         "eyJhbGciOiJSUzI1NiJ9==.e30=.c2ln",
		"std_base64_chars":      "eyJhbGciOiJSUzI1NiJ9+/.e30+/.c2ln+/",
		"whitespace_inside":     "eyJhbGciOiJSUzI1NiJ9 .e30.c2ln",
		"bearer_prefix":         "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
		"json_serialization":    `{"payload":"e30","signatures":[{"protected":"eyJhbGciOiJSUzI1NiJ9","signature":"c2ln"}]}`,
		"oversized":             compactJWS(rsa, withClaims(`"pad":"`+strings.Repeat("x", 12<<10)+`"`), "sig"),
	}
	return c
}

// Every token of the JOSE corpus is refused with a reason, and none
// leaks into the error.
func TestVerify_JOSECorpusIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{issuer: fuzzIssuer})
	for name, tok := range joseCorpus() {
		p, err := e.verify(tok)
		if err == nil || p != nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		ie, ok := err.(*identity.Error)
		if !ok || ie.Reason == "" {
			t.Errorf("%s: error %v", name, err)
		}
	}
	if n := e.idp().Requests("/etc/passwd") + e.idp().Requests("/cert.pem"); n != 0 {
		t.Errorf("a header URL was fetched")
	}
}

// Threat: a huge token costs memory before it is refused. A 1 MB token is
// refused before any decoding: a few hundred bytes allocated at most.
func TestVerify_HugeTokenRefusedBeforeParsing(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := strings.Repeat("a", 1<<20) + "." + strings.Repeat("b", 1<<20) + ".c"
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 100
	for range n {
		if _, err := e.v.Verify(context.Background(), tok); err == nil {
			t.Fatal("accepted")
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 1024 {
		t.Fatalf("%d bytes allocated per refusal of a 2 MB token", per)
	}
}

func jwksCorpus() map[string][]byte {
	deep := strings.Repeat(`[`, 3000) + strings.Repeat(`]`, 3000)
	many := `{"keys":[` + strings.TrimSuffix(strings.Repeat(`{"kty":"RSA","n":"AQAB","e":"AQAB"},`, 500), ",") + `]}`
	return map[string][]byte{
		"rsa_small":       []byte(`{"keys":[{"kty":"RSA","kid":"k","use":"sig","alg":"RS256","n":"AQAB","e":"AQAB"}]}`),
		"ec_and_oct":      []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},{"kty":"oct","k":"AAAA"}]}`),
		"okp":             []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`),
		"private_rsa":     []byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB","p":"AQ","q":"AQ"}]}`),
		"use_enc":         []byte(`{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}`),
		"alg_none":        []byte(`{"keys":[{"kty":"RSA","alg":"none","n":"AQAB","e":"AQAB"}]}`),
		"alg_hs256":       []byte(`{"keys":[{"kty":"oct","alg":"HS256","k":"c2VjcmV0"}]}`),
		"ec_bad_curve":    []byte(`{"keys":[{"kty":"EC","crv":"P-192","x":"AA","y":"AA"}]}`),
		"ec_off_curve":    []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`),
		"x5c_garbage":     []byte(`{"keys":[{"kty":"RSA","x5c":["bm90"],"n":"AQAB","e":"AQAB"}]}`),
		"e_huge":          []byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"` + strings.Repeat("A", 4096) + `"}]}`),
		"n_huge":          []byte(`{"keys":[{"kty":"RSA","n":"` + strings.Repeat("_", 100000) + `","e":"AQAB"}]}`),
		"keys_null":       []byte(`{"keys":null}`),
		"keys_object":     []byte(`{"keys":{}}`),
		"keys_strings":    []byte(`{"keys":["a","b"]}`),
		"array":           []byte(`[]`),
		"empty":           []byte(``),
		"deep":            []byte(`{"keys":` + deep + `}`),
		"many_keys":       []byte(many),
		"duplicate_keys":  []byte(`{"keys":[],"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`),
		"kid_numbers":     []byte(`{"keys":[{"kty":"RSA","kid":1,"n":"AQAB","e":"AQAB"}]}`),
		"nested_keys":     []byte(`{"keys":[{"kty":"RSA","n":{"n":"AQAB"},"e":"AQAB"}]}`),
		"numbers_strings": []byte(`{"keys":[{"kty":"RSA","n":12345,"e":"65537"}]}`),
		"utf8_bom":        []byte("\xef\xbb\xbf{\"keys\":[]}"),
		"invalid_utf8":    []byte("{\"keys\":[{\"kty\":\"\xff\"}]}"),
	}
}

func keyHashSeeds() map[string]string {
	h := identity.HashKey("k").String()
	return map[string]string{
		"valid": h, "upper": strings.ToUpper(h), "short": "zz", "zeros": strings.Repeat("0", 64),
		"65_chars": h + "0", "63_chars": h[1:], "non_hex": strings.Repeat("g", 64), "unicode": strings.Repeat("é", 32),
		"space_padded": " " + h[1:], "nul": h[:63] + "\x00", "empty": "",
	}
}

func lookupSeeds() map[string]string {
	return map[string]string{
		"valid": fuzzLookupKey, "valid_secondary": fuzzLookupKey + "-2", "empty": "", "prefix_only": identity.APIKeyPrefix,
		"truncated": fuzzLookupKey[:20], "one_more": fuzzLookupKey + "x", "case": strings.ToUpper(fuzzLookupKey),
		"long": strings.Repeat("k", 600), "limit": strings.Repeat("k", 512), "nul": fuzzLookupKey + "\x00",
		"space": fuzzLookupKey + " ", "bearer": "Bearer " + fuzzLookupKey,
	}
}

// TestSeedCorpus_Identity keeps testdata/fuzz in step with the corpora
// above (GATEHOUSE_UPDATE_CORPUS=1 writes them).
func TestSeedCorpus_Identity(t *testing.T) {
	verify := map[string][]any{}
	for name, tok := range joseCorpus() {
		verify[name] = []any{tok}
	}
	seedcorpus.CheckSeedCorpus(t, "FuzzVerify", verify)
	jwks := map[string][]any{}
	for name, doc := range jwksCorpus() {
		jwks[name] = []any{doc}
	}
	seedcorpus.CheckSeedCorpus(t, "FuzzParseJWKS", jwks)
	hashes := map[string][]any{}
	for name, s := range keyHashSeeds() {
		hashes[name] = []any{s}
	}
	seedcorpus.CheckSeedCorpus(t, "FuzzParseKeyHash", hashes)
	lookups := map[string][]any{}
	for name, s := range lookupSeeds() {
		lookups[name] = []any{s}
	}
	seedcorpus.CheckSeedCorpus(t, "FuzzKeyTableLookup", lookups)
}

const fuzzLookupKey = "ghk_fuzz-key-0123456789abcdefghijklmnopqrstuvw"

// FuzzKeyTableLookup: looking up any string finds a principal only for
// the exact keys in the table, never panics, and refuses keys over the
// length limit.
func FuzzKeyTableLookup(f *testing.F) {
	table := identity.NewKeyTable()
	p1 := identity.NewStaticPrincipal(identity.CredentialAPIKey, "one", "one", nil, nil, nil)
	p2 := identity.NewStaticPrincipal(identity.CredentialAPIKey, "two", "two", nil, nil, nil)
	if err := table.Add(identity.HashKey(fuzzLookupKey), p1); err != nil {
		f.Fatal(err)
	}
	if err := table.Add(identity.HashKey(fuzzLookupKey+"-2"), p2); err != nil {
		f.Fatal(err)
	}
	f.Add(fuzzLookupKey)
	f.Fuzz(func(t *testing.T, key string) {
		p, ok := table.Lookup(key)
		switch key {
		case fuzzLookupKey:
			if !ok || p != p1 {
				t.Fatalf("the primary key was not found")
			}
		case fuzzLookupKey + "-2":
			if !ok || p != p2 {
				t.Fatalf("the second key was not found")
			}
		default:
			if ok || p != nil {
				t.Fatalf("%q found %v", key, p)
			}
		}
	})
}
