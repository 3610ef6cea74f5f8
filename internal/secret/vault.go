package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Vault reads secrets from the KV version 2 engine of a Vault-compatible
// server (Vault, OpenBao): GET <Address>/v1/<mount>/data/<path>, the
// secret's fields in data.data. Errors name the reference and the server's
// answer, never a value or the token.
type Vault struct {
	// Address is the server's base URL, e.g. https://vault.internal:8200.
	Address string
	// Token returns the token sent as X-Vault-Token; it is called for
	// every read, so that a token file renewed by an agent is picked up.
	Token func(ctx context.Context) (Value, error)
	// Namespace, when set, is sent as X-Vault-Namespace.
	Namespace string
	// Client makes the requests; its Timeout (or Timeout below) bounds them.
	Client *http.Client
	// Timeout bounds one read; default 5s.
	Timeout time.Duration
}

// maxVaultResponse bounds a response body.
const maxVaultResponse = 1 << 20

// Read returns field of the secret at path (mount/data/path).
func (v *Vault) Read(ctx context.Context, path, field string) (Value, error) {
	data, err := v.ReadAll(ctx, path)
	if err != nil {
		return Value{}, err
	}
	raw, ok := data[field]
	if !ok {
		return Value{}, fmt.Errorf("vault secret %s has no field %q: %w", path, field, ErrNotFound)
	}
	return fieldValue(path, field, raw)
}

// fieldValue accepts a string, or a number or boolean as written in JSON.
func fieldValue(path, field string, raw json.RawMessage) (Value, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return Value{}, fmt.Errorf("vault secret %s: field %q is empty", path, field)
		}
		return Value{v: s}, nil
	}
	t := strings.TrimSpace(string(raw))
	if t == "true" || t == "false" {
		return Value{v: t}, nil
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return Value{v: t}, nil
	}
	return Value{}, fmt.Errorf("vault secret %s: field %q is not a string, number or boolean", path, field)
}

// ReadAll returns every field of the secret at path, each as raw JSON.
func (v *Vault) ReadAll(ctx context.Context, path string) (map[string]json.RawMessage, error) {
	if v.Address == "" {
		return nil, fmt.Errorf("vault secret %s: no Vault address (set secrets.vault.address or VAULT_ADDR)", path)
	}
	if v.Token == nil {
		return nil, fmt.Errorf("vault secret %s: no Vault token (set secrets.vault.token_file or VAULT_TOKEN)", path)
	}
	token, err := v.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("vault secret %s: reading the Vault token: %w", path, err)
	}
	timeout := v.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := strings.TrimSuffix(v.Address, "/") + "/v1/" + escapePath(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		// Not err itself: a url.Error repeats the whole URL.
		return nil, fmt.Errorf("vault secret %s: the address %s is not a URL", path, v.address())
	}
	req.Header.Set("X-Vault-Token", token.Reveal())
	req.Header.Set("Accept", "application/json")
	if v.Namespace != "" {
		req.Header.Set("X-Vault-Namespace", v.Namespace)
	}
	client := &http.Client{}
	if v.Client != nil {
		c := *v.Client
		client = &c
	}
	// The token travels in a header of its own, which net/http sends on
	// to wherever a redirect points: follow one only to the same scheme
	// and host.
	client.CheckRedirect = sameOrigin
	res, err := client.Do(req)
	if err != nil {
		// The url.Error names the URL (no token, no value); keep only its
		// cause so the message stays short.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("vault secret %s: no answer from %s within %s", path, v.address(), timeout)
		}
		return nil, fmt.Errorf("vault secret %s: %s: %v", path, v.address(), err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxVaultResponse+1))
	if err != nil {
		return nil, fmt.Errorf("vault secret %s: reading the answer: %v", path, err)
	}
	if len(body) > maxVaultResponse {
		return nil, fmt.Errorf("vault secret %s: the answer is larger than %d bytes", path, maxVaultResponse)
	}
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("vault secret %s does not exist (or its latest version is deleted): %w", path, ErrNotFound)
	case http.StatusForbidden:
		return nil, fmt.Errorf("vault secret %s: permission denied (is the token valid, and does its policy allow read on %s?)%s", path, path, vaultErrors(body))
	default:
		return nil, fmt.Errorf("vault secret %s: Vault answered %d%s", path, res.StatusCode, vaultErrors(body))
	}
	var doc struct {
		Data struct {
			Data map[string]json.RawMessage `json:"data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Data.Data == nil {
		return nil, fmt.Errorf("vault secret %s: the answer is not a KV v2 secret (is the path mount/data/path, on a version 2 engine?)", path)
	}
	return doc.Data.Data, nil
}

// vaultErrors returns Vault's error messages (its "errors" list), which
// say what went wrong and hold no secret data, shortened.
func vaultErrors(body []byte) string {
	var doc struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(body, &doc) != nil || len(doc.Errors) == 0 {
		return ""
	}
	msg := strings.Join(doc.Errors, "; ")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return ": " + strconv.Quote(msg)
}

func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// FieldValue turns one field of a KV v2 secret (raw JSON) into a Value:
// a string, or a number or boolean as written.
func FieldValue(path, field string, raw json.RawMessage) (Value, error) {
	return fieldValue(path, field, raw)
}

// address is the Vault address for messages, its password (if any)
// masked.
func (v *Vault) address() string {
	u, err := url.Parse(v.Address)
	if err != nil {
		return "(an address that is not a URL)"
	}
	return u.Redacted()
}

// errRedirect is why a redirect to another origin was not followed.
var errRedirect = errors.New("redirect not followed")

// sameOrigin follows a redirect only to the scheme and host of the
// first request, at most three times.
func sameOrigin(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return fmt.Errorf("%w: Vault sent it to %s://%s, another address, where the token is not sent (point the address at the node that answers, such as the active node or its load balancer)", errRedirect, req.URL.Scheme, req.URL.Host)
	}
	if len(via) >= 3 {
		return fmt.Errorf("%w: more than 3 redirects", errRedirect)
	}
	return nil
}
