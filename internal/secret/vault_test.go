package secret_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

const (
	testToken = "hvs.test-token-never-shown"
	testValue = "s3cr3t-value-never-shown"
)

// kvServer implements the KV v2 read endpoint: GET /v1/<mount>/data/<path>.
type kvServer struct {
	mu       sync.Mutex
	secrets  map[string]map[string]any // API path → fields
	lastNS   string
	block    chan struct{} // when set, requests wait on it
	requests int
}

func (kv *kvServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kv.mu.Lock()
	kv.requests++
	kv.lastNS = r.Header.Get("X-Vault-Namespace")
	block := kv.block
	fields, ok := kv.secrets[strings.TrimPrefix(r.URL.Path, "/v1/")]
	kv.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodGet || r.Header.Get("X-Vault-Token") != testToken {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"errors":["permission denied"]}`))
		return
	}
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[]}`))
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"data": map[string]any{"data": fields, "metadata": map[string]any{"version": 3}},
	})
}

func newKV(t *testing.T) (*kvServer, *httptest.Server) {
	kv := &kvServer{secrets: map[string]map[string]any{
		"secret/data/gatehouse":    {"api_key": testValue, "port": 8443, "on": true, "obj": map[string]any{"a": 1}},
		"kv/data/team a/app":       {"k": "spaced"},
		"secret/data/empty-fields": {"e": ""},
	}}
	srv := httptest.NewServer(kv)
	t.Cleanup(srv.Close)
	return kv, srv
}

func token(tok string) func(context.Context) (secret.Value, error) {
	return func(context.Context) (secret.Value, error) { return secret.NewValue(tok), nil }
}

func TestVault_ReadsKVv2Fields(t *testing.T) {
	kv, srv := newKV(t)
	v := &secret.Vault{Address: srv.URL, Token: token(testToken), Namespace: "team-a"}
	for _, tc := range []struct{ name, path, field, want string }{
		{"string", "secret/data/gatehouse", "api_key", testValue},
		{"number", "secret/data/gatehouse", "port", "8443"},
		{"boolean", "secret/data/gatehouse", "on", "true"},
		{"escaped path", "kv/data/team a/app", "k", "spaced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Read(context.Background(), tc.path, tc.field)
			if err != nil || got.Reveal() != tc.want {
				t.Fatalf("Read = %q, %v; want %q", got.Reveal(), err, tc.want)
			}
		})
	}
	if kv.lastNS != "team-a" {
		t.Errorf("namespace header %q", kv.lastNS)
	}
}

// Errors say what is wrong with the reference or the store, and never
// contain the token or a secret value.
func TestVault_ErrorsAreClearAndNeverHoldSecrets(t *testing.T) {
	kv, srv := newKV(t)
	for _, tc := range []struct {
		name, path, field string
		vault             *secret.Vault
		want              string
		notFound          bool
	}{
		{"missing field", "secret/data/gatehouse", "nope", &secret.Vault{Address: srv.URL, Token: token(testToken)}, `has no field "nope"`, true},
		{"missing secret", "secret/data/absent", "x", &secret.Vault{Address: srv.URL, Token: token(testToken)}, "does not exist", true},
		{"object field", "secret/data/gatehouse", "obj", &secret.Vault{Address: srv.URL, Token: token(testToken)}, "not a string", false},
		{"empty field", "secret/data/empty-fields", "e", &secret.Vault{Address: srv.URL, Token: token(testToken)}, "is empty", false},
		{"wrong token", "secret/data/gatehouse", "api_key", &secret.Vault{Address: srv.URL, Token: token("hvs.wrong-" + testValue)}, `permission denied`, false},
		{"no address", "secret/data/gatehouse", "api_key", &secret.Vault{Token: token(testToken)}, "no Vault address", false},
		{"no token", "secret/data/gatehouse", "api_key", &secret.Vault{Address: srv.URL}, "no Vault token", false},
		{"server down", "secret/data/gatehouse", "api_key", &secret.Vault{Address: "http://127.0.0.1:1", Token: token(testToken)}, "secret/data/gatehouse", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.vault.Read(context.Background(), tc.path, tc.field)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if strings.Contains(msg, testValue) || strings.Contains(msg, testToken) || strings.Contains(msg, "hvs.") {
				t.Errorf("error shows a secret: %q", msg)
			}
			if errors.Is(err, secret.ErrNotFound) != tc.notFound {
				t.Errorf("errors.Is(ErrNotFound) = %v", !tc.notFound)
			}
		})
	}
	_ = kv
}

func TestVault_TimesOut(t *testing.T) {
	kv, srv := newKV(t)
	kv.block = make(chan struct{})
	defer close(kv.block)
	v := &secret.Vault{Address: srv.URL, Token: token(testToken), Timeout: 50 * time.Millisecond}
	start := time.Now()
	_, err := v.Read(context.Background(), "secret/data/gatehouse", "api_key")
	if err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the timeout was not applied")
	}
}

// A redirect to another address is not followed: the token would go with
// it. One to the same address is. Errors name the address without its
// password.
func TestVault_TokenNeverFollowsARedirectElsewhere(t *testing.T) {
	kv, _ := newKV(t)
	var leaked sync.Map
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.Header.Get("X-Vault-Token"); tok != "" {
			leaked.Store(tok, true)
		}
		http.Error(w, "no", http.StatusNotFound)
	}))
	t.Cleanup(other.Close)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/elsewhere/"):
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
		case strings.HasPrefix(r.URL.Path, "/v1/moved/"):
			http.Redirect(w, r, "/v1/"+strings.TrimPrefix(r.URL.Path, "/v1/moved/"), http.StatusTemporaryRedirect)
		default:
			kv.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(front.Close)
	v := &secret.Vault{Address: front.URL, Token: token(testToken), Client: front.Client()}
	ctx := context.Background()
	_, err := v.Read(ctx, "elsewhere/data/gatehouse", "api_key")
	if err == nil || !strings.Contains(err.Error(), "another address") || !strings.Contains(err.Error(), other.Listener.Addr().String()) {
		t.Fatalf("a redirect to another address: %v, want it refused naming that address", err)
	}
	leaked.Range(func(k, _ any) bool {
		t.Fatal("the token was sent to the address Vault redirected to")
		return false
	})
	if got, err := v.Read(ctx, "moved/secret/data/gatehouse", "api_key"); err != nil || got.Reveal() != testValue {
		t.Fatalf("a redirect to the same address: %v", err)
	}

	u := strings.Replace(front.URL, "http://", "http://ops:hunter2@", 1)
	front.Close()
	v = &secret.Vault{Address: u, Token: token(testToken), Timeout: time.Second}
	if _, err := v.Read(ctx, "secret/data/gatehouse", "api_key"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("an unreachable address with user info: %v, want an error without the password", err)
	}
}
