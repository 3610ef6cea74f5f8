package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/dashboard"
	"github.com/gatehouse-dev/gatehouse/internal/devmode"
)

// The browser tests drive Debian's Chromium (headless) through the
// dashboard of a real `gatehouse dev` environment: sign in through the
// development issuer's authorization code flow, open every page, check
// each for console errors and broken links, see live traffic arrive on
// the overview, rotate a key, find the rotation in the audit log,
// compare two configuration versions, see refused requests flagged
// as anomalies and the suggestions page list the operations with traffic. Each page is saved as a PNG in
// $GATEHOUSE_SCREENSHOTS (default: a temporary directory).

// browserPath finds Chromium. Without one, the test skips, unless CI is
// set: there it fails.
func browserPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium found, and CI is set: install it (apt-get install -y chromium)")
	}
	t.Skip("browser tests skipped: no Chromium found (apt-get install -y chromium); set CI to make this a failure")
	return ""
}

// fakeBackends is the backends source a registration store and health
// checks would provide, with ECS task metadata.
type fakeBackends struct{}

func (fakeBackends) Backends(context.Context) ([]dashboard.Backend, error) {
	at := time.Now().Add(-42 * time.Second)
	return []dashboard.Backend{{
		Name: "demo",
		Instances: []dashboard.Instance{
			{URL: "http://10.0.1.17:8080", Health: "healthy", Breaker: "closed", Weight: 1, Source: "registered",
				Metadata: map[string]string{"cluster": "prod", "task_arn": "arn:aws:ecs:eu-west-1:123456789012:task/prod/3f2a9c", "availability_zone": "eu-west-1a", "revision": "17"}},
			{URL: "http://10.0.2.31:8080", Health: "unhealthy", Breaker: "open", Weight: 1, Source: "registered",
				Metadata:  map[string]string{"cluster": "prod", "task_arn": "arn:aws:ecs:eu-west-1:123456789012:task/prod/b81d07", "availability_zone": "eu-west-1b", "revision": "17"},
				LastError: "dial tcp 10.0.2.31:8080: connect: connection refused", LastErrorAt: at},
			{URL: "http://10.0.3.9:8080", Health: "healthy", Breaker: "half-open", Weight: 2, Source: "static"},
		},
	}}, nil
}

type shooter struct {
	t   *testing.T
	dir string
}

func (s *shooter) save(ctx context.Context, name string) {
	s.t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// consoleWatch collects the console errors and exceptions of the tab.
type consoleWatch struct {
	mu   sync.Mutex
	errs []string
}

func (c *consoleWatch) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.errs
	c.errs = nil
	return out
}

func TestBrowser_DashboardEndToEnd(t *testing.T) {
	exe := browserPath(t)
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	shots := os.Getenv("GATEHOUSE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	sh := &shooter{t: t, dir: shots}

	// A development environment: gateway, issuer with demo users, demo
	// backends, and the dashboard on the admin listener.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	env, err := devmode.Start(ctx, devmode.Options{
		Addr: "127.0.0.1:0", IssuerAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger: logger, Backends: fakeBackends{},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	srvCtx, stopSrv := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- env.Server.Serve(srvCtx) }()
	defer func() { stopSrv(); <-served }()

	// Chromium, with the flags this closed network needs.
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	watch := &consoleWatch{}
	msgs := chromedp.Console(bctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				watch.mu.Lock()
				watch.errs = append(watch.errs, fmt.Sprintf("%s: %s (%s)", m.Type, m.Text, m.URL))
				watch.mu.Unlock()
			}
		}
	}()

	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, 20*time.Second)
		defer scancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			loc, _ := chromedp.Run(bctx, chromedp.Location())
			body, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("at %s: %v\npage text:\n%s", loc, err, body)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	client := &http.Client{Timeout: 10 * time.Second}
	// checkPage fails on console errors and on any href or src of the
	// page that does not answer 2xx (fetched with the page's session).
	checkPage := func(name string) {
		t.Helper()
		links, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('[href],[src]')).filter(e => !(e.getAttribute('href') || '').startsWith('#')).map(e => e.href || e.src)`))
		if err != nil {
			t.Fatal(err)
		}
		// The session cookie is HttpOnly: read it through the protocol.
		sess := sessionCookie(t, bctx)
		seen := map[string]bool{}
		for _, l := range links {
			u, err := url.Parse(l)
			if err != nil {
				t.Errorf("%s: unparsable link %q", name, l)
				continue
			}
			u.Fragment = ""
			if seen[u.String()] {
				continue
			}
			seen[u.String()] = true
			req, _ := http.NewRequest("GET", u.String(), nil)
			if strings.HasPrefix(u.String(), env.AdminURL) && sess != "" {
				req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: sess})
			}
			res, err := client.Do(req)
			if err != nil {
				t.Errorf("%s: link %s: %v", name, u, err)
				continue
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			// Redirects are followed (the sign-in link goes to the
			// identity provider); a signed-in page must not lead back to
			// the sign-in page.
			if res.StatusCode < 200 || res.StatusCode > 299 {
				t.Errorf("%s: link %s answered %d", name, u, res.StatusCode)
			}
			if sess != "" && res.Request.URL.Path == "/ui/login" {
				t.Errorf("%s: link %s leads to the sign-in page", name, u)
			}
		}
		if errs := watch.take(); len(errs) > 0 {
			t.Errorf("%s: console errors:\n%s", name, strings.Join(errs, "\n"))
		}
	}

	// 1. The dashboard sends a signed-out person to the sign-in page.
	run(chromedp.Navigate(env.DashboardURL), chromedp.WaitVisible(chromedp.CSS("#sign-in")))
	sh.save(bctx, "login")
	checkPage("login")

	// 2. Sign in through the development issuer: pick Alice (admin).
	alice := chromedp.CSS(`a[href*="login_hint=alice"]`)
	run(chromedp.Click(chromedp.CSS("#sign-in")), chromedp.WaitVisible(alice))
	sh.save(bctx, "issuer")
	run(chromedp.Click(alice), chromedp.WaitVisible(chromedp.CSS("#api-table")))
	if who := text(".who"); !strings.Contains(who, "Alice Admin") || !strings.Contains(who, "admin") {
		t.Fatalf("header after sign-in: %q", who)
	}

	// 3. Traffic through the gateway appears on the overview within seconds.
	// Three rounds of ten requests, a second apart, so that the charts
	// have more than one point.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := range 30 {
		if i > 0 && i%10 == 0 {
			<-tick.C
		}
		path := "/orders/" + fmt.Sprint(i)
		req, _ := http.NewRequest("GET", env.GatewayURL+path, nil)
		req.Header.Set("X-API-Key", env.APIKey)
		if i%10 == 9 {
			req.Header.Del("X-API-Key") // some 401s for the error rate
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	if res, err := http.Get(env.GatewayURL + "/public/status"); err == nil {
		res.Body.Close()
	}
	run(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`(document.querySelector('#api-table tr[data-api="orders"] td[data-k="requests"]') || {}).textContent === "30"`,
			chromedp.WithPollingInterval(200*time.Millisecond)))
		return err
	}), chromedp.WaitVisible(chromedp.CSS(`#chart-orders svg path.s-p95`)))
	if n := text(`#api-table tr[data-api="orders"] td[data-k="requests"]`); n != "30" {
		t.Errorf("overview shows %s requests for orders, want 30", n)
	}
	sh.save(bctx, "overview")
	checkPage("overview")

	// 4. The APIs page says which group deleting an order requires, and
	// where that is configured.
	run(chromedp.Click(chromedp.CSS(`nav a[href="/ui/apis"]`)), chromedp.WaitVisible(chromedp.CSS("#api-orders")))
	apis := text("#api-orders table")
	if !strings.Contains(apis, "deleteOrder") || !strings.Contains(apis, "groups: any of admins") || !strings.Contains(apis, "(gatehouse dev):") {
		t.Errorf("APIs page lacks deleteOrder's requirement or source:\n%s", apis)
	}
	sh.save(bctx, "apis")
	checkPage("apis")

	// 5. Backends with health, breaker, weight, ECS metadata, last error.
	run(chromedp.Click(chromedp.CSS(`nav a[href="/ui/backends"]`)), chromedp.WaitVisible(chromedp.CSS("#backend-demo")))
	if b := text("#backend-demo"); !strings.Contains(b, "eu-west-1b") || !strings.Contains(b, "connection refused") || !strings.Contains(b, "half-open") {
		t.Errorf("backends page:\n%s", b)
	}
	sh.save(bctx, "backends")
	checkPage("backends")

	// 6. Rotate a key from the UI; the new key is shown once.
	run(chromedp.Click(chromedp.CSS(`nav a[href="/ui/consumers"]`)), chromedp.WaitVisible(chromedp.CSS("#consumer-sample-app")))
	sh.save(bctx, "consumers")
	checkPage("consumers")
	run(chromedp.Click(chromedp.CSS(`button[aria-label="Rotate the primary key of sample-app"]`)), chromedp.WaitVisible(chromedp.CSS("#new-key")))
	key, err := chromedp.Run(bctx, chromedp.Value(chromedp.CSS("#new-key")))
	if err != nil || !strings.HasPrefix(key, "ghk_") {
		t.Fatalf("new key %q, %v", key, err)
	}
	sh.save(bctx, "key")
	checkPage("key")

	// 7. The audit log says who rotated it, and when.
	run(chromedp.Click(chromedp.CSS(`a[href="/ui/consumers#consumer-sample-app"]`)), chromedp.WaitVisible(chromedp.CSS("#consumer-sample-app")))
	run(chromedp.Click(chromedp.CSS(`nav a[href="/ui/audit"]`)), chromedp.WaitVisible(chromedp.CSS("#audit")))
	// The filtered page has the same table as the unfiltered one: wait for
	// the navigation itself before reading it.
	run(chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/audit?action=key.rotate"]`)),
		chromedp.Navigate(env.AdminURL+"/ui/audit?action=key.rotate"), chromedp.WaitVisible(chromedp.CSS("#audit")))
	audit := text("#audit tbody")
	if !strings.Contains(audit, "alice@example.com") || !strings.Contains(audit, "key.rotate") || !strings.Contains(audit, "sample-app") {
		t.Errorf("audit log lacks the rotation:\n%s", audit)
	}
	if st := text("#chain-status"); !strings.Contains(st, "Chain verified") {
		t.Errorf("chain status: %q", st)
	}
	sh.save(bctx, "audit")
	checkPage("audit")

	// 8. Change the configuration, then compare the two versions.
	env.Config = []byte(strings.Replace(string(env.Config), "groups: {any_of: [admins]}", "groups: {any_of: [admins, order-managers]}", 1))
	if err := env.Server.Reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	run(chromedp.Click(chromedp.CSS(`nav a[href="/ui/config"]`)), chromedp.WaitVisible(chromedp.CSS("#compare")))
	sh.save(bctx, "config")
	checkPage("config")
	run(chromedp.Click(chromedp.CSS(`#compare button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("table.diff")))
	diff := text("table.diff")
	if !strings.Contains(diff, "order-managers") {
		t.Errorf("diff does not show the change:\n%s", diff)
	}
	sh.save(bctx, "config-diff")
	checkPage("config-diff")

	// 9. Requests refused for want of a key, enough within a minute for
	// the demo's auth_failures detector (threshold 10), are flagged on the
	// anomalies page, and the address is throttled.
	for range 20 {
		res, err := http.Get(env.GatewayURL + "/orders/1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	run(chromedp.Click(chromedp.CSS(`nav a[href="/ui/anomalies"]`)), chromedp.WaitVisible(chromedp.CSS("#anomaly-counts")))
	var flagged string
	for deadline := time.Now().Add(10 * time.Second); ; {
		run(chromedp.Navigate(env.AdminURL+"/ui/anomalies?kind=auth_failures"), chromedp.WaitVisible(chromedp.CSS("#anomalies")))
		if flagged = text("#anomalies tbody"); strings.Contains(flagged, "ip:127.0.0.1") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(flagged, "auth_failures") || !strings.Contains(flagged, "ip:127.0.0.1") || !strings.Contains(flagged, "throttled") {
		t.Errorf("anomalies page lacks the refused requests:\n%s", flagged)
	}
	sh.save(bctx, "anomalies")
	checkPage("anomalies")

	// 10. The suggestions page: the orders API has had upstream traffic,
	// too little for a suggestion (500 exchanges by default), so its
	// operations wait; the filter keeps them.
	run(chromedp.Click(chromedp.CSS(`nav a[href="/ui/suggestions"]`)), chromedp.WaitVisible(chromedp.CSS("#suggestion-counts")))
	if title, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.title`)); err != nil || title != "Suggestions · Gatehouse" {
		t.Errorf("suggestions page title %q, %v", title, err)
	}
	if h := text("main h1"); h != "Suggestions" {
		t.Errorf("suggestions page heading %q", h)
	}
	if w := text("#suggestion-window"); !strings.Contains(w, "24h") || !strings.Contains(w, "500 backend exchanges") {
		t.Errorf("suggestions page window: %q", w)
	}
	run(chromedp.Click(chromedp.CSS(`a[href="/ui/suggestions?action=wait"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/suggestions?action=wait"][aria-current="page"]`)))
	suggested := text("#suggestions tbody")
	if !strings.Contains(suggested, "wait") || !strings.Contains(suggested, "orders") || !strings.Contains(suggested, "backend exchanges needed so far") {
		t.Errorf("suggestions page lacks the orders API waiting for traffic:\n%s", suggested)
	}
	if n := text(`#suggestion-counts dd[data-action="wait"]`); n == "0" {
		t.Errorf("suggestions page counts no wait")
	}
	sh.save(bctx, "suggestions")
	checkPage("suggestions")

	// 11. Keyboard: the first Tab reaches the skip link, which leads to main.
	run(chromedp.Navigate(env.DashboardURL), chromedp.WaitVisible(chromedp.CSS("#api-table")))
	focused, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(() => { document.querySelector('.skip').focus(); return document.activeElement.textContent })()`))
	if err != nil || focused != "Skip to main content" {
		t.Errorf("skip link focus: %q %v", focused, err)
	}
	checkPage("overview again")
}

// sessionCookie reads the dashboard's session cookie from the browser.
func sessionCookie(t *testing.T, ctx context.Context) string {
	t.Helper()
	cookies, err := chromedp.Run(ctx, chromedp.Action[[]*network.Cookie](func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
		return res.Cookies, err
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cookies {
		if c.Name == "gatehouse_session" {
			return c.Value
		}
	}
	return ""
}
