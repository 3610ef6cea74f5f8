package devmode

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The commands the welcome text prints work: a token call succeeds, an
// API key call succeeds, no credentials is 401, a missing scope is 403.
func TestDevMode_WelcomeCommandsWork(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	env, err := Start(ctx, Options{
		Addr: "127.0.0.1:0", IssuerAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler), Out: &out,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- env.Server.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
		env.Close()
	}()
	welcome := out.String()
	for _, want := range []string{"DEVELOPMENT MODE", env.GatewayURL, env.APIKey, "curl", env.AdminURL + "/ui/"} {
		if !strings.Contains(welcome, want) {
			t.Errorf("welcome text lacks %q", want)
		}
	}

	call := func(method, path string, hdr map[string]string) int {
		req, _ := http.NewRequest(method, env.GatewayURL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	tokenRes, err := http.Get(env.IssuerURL + "/dev/token/reader")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(tokenRes.Body)
	tokenRes.Body.Close()
	bearer := map[string]string{"Authorization": "Bearer " + strings.TrimSpace(string(tok))}

	if c := call("GET", "/orders/42", bearer); c != 200 {
		t.Errorf("token: %d", c)
	}
	if c := call("GET", "/orders/42", map[string]string{"X-API-Key": env.APIKey}); c != 200 {
		t.Errorf("api key: %d", c)
	}
	if c := call("GET", "/orders/42", nil); c != 401 {
		t.Errorf("no credentials: %d", c)
	}
	if c := call("POST", "/orders", bearer); c != 403 {
		t.Errorf("missing scope: %d", c)
	}
	if c := call("GET", "/public/status", nil); c != 200 {
		t.Errorf("anonymous: %d", c)
	}

	// The standard client_credentials grant works too.
	res, err := http.PostForm(env.IssuerURL+"/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"writer"}, "client_secret": {"writer-secret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&tr)
	res.Body.Close()
	if c := call("POST", "/orders", map[string]string{"Authorization": "Bearer " + tr.AccessToken}); c != 200 {
		t.Errorf("writer token on POST: %d", c)
	}
}

// The anomaly commands of the welcome text do what it says: repeated 401s
// from one address get it throttled (429), and the admin API lists the
// anomaly.
func TestDevMode_AnomalyDemo(t *testing.T) {
	env := startDemo(t)
	// Bounded: even if the first refusals fall at the end of a window,
	// the next window reaches the threshold well within 40 requests.
	var codes []int
	for range 40 {
		res, err := http.Get(env.GatewayURL + "/orders/42")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		codes = append(codes, res.StatusCode)
		if res.StatusCode == http.StatusTooManyRequests {
			break
		}
	}
	if codes[len(codes)-1] != http.StatusTooManyRequests {
		t.Fatalf("never throttled: %v", codes)
	}
	var list struct {
		Enabled bool `json:"enabled"`
		Events  []struct {
			Kind, Caller, Action string
		} `json:"events"`
	}
	for range 100 { // the event is written by the detector's goroutine
		res, err := http.Get(env.AdminURL + "/v1/anomalies")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(res.Body).Decode(&list)
		res.Body.Close()
		if len(list.Events) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !list.Enabled || len(list.Events) != 1 || list.Events[0].Kind != "auth_failures" ||
		list.Events[0].Caller != "ip:127.0.0.1" || list.Events[0].Action != "throttled" {
		t.Fatalf("GET /v1/anomalies: %+v (codes %v)", list, codes)
	}
}

// The suggestions command of the welcome text does what it says: after
// 30 requests to the anonymous route, the admin API proposes a deadline
// for it and a concurrency limit for its backend.
func TestDevMode_SuggestionsDemo(t *testing.T) {
	env := startDemo(t)
	for range 30 {
		res, err := http.Get(env.GatewayURL + "/public/status")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("/public/status: %d", res.StatusCode)
		}
	}
	res, err := http.Get(env.AdminURL + "/v1/suggestions?min_samples=20")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var rep struct {
		Suggestions []struct {
			Kind, Action, Setting, Current, Suggested, Patch string
			Line                                             int
		} `json:"suggestions"`
	}
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /v1/suggestions: %d %v", res.StatusCode, err)
	}
	var timeout, limit bool
	for _, s := range rep.Suggestions {
		switch s.Setting {
		case "apis[public].operations[status].timeouts.request":
			timeout = s.Action == "lower" && s.Current == "30s" && s.Suggested == "500ms (upstream_attempt 100ms)" && s.Line > 0
		case "backends[demo].max_concurrent_requests":
			limit = s.Action == "add" && s.Suggested == "10"
		}
	}
	if !timeout || !limit {
		t.Fatalf("suggestions: %+v", rep.Suggestions)
	}
}

// startDemo starts gatehouse dev on free loopback ports, serving until
// the test ends.
func startDemo(t *testing.T) *Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	env, err := Start(ctx, Options{
		Addr: "127.0.0.1:0", IssuerAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler), Out: io.Discard,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- env.Server.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		env.Close()
	})
	return env
}
