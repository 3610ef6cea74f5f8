package gateway_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// fakeSource is an InstanceSource a test drives by hand.
type fakeSource struct {
	mu       sync.Mutex
	urls     []string
	watchers map[int]func([]upstream.InstanceSpec)
	next     int
}

func specs(urls []string) []upstream.InstanceSpec {
	out := make([]upstream.InstanceSpec, len(urls))
	for i, u := range urls {
		out[i] = upstream.InstanceSpec{URL: u}
	}
	return out
}

func (f *fakeSource) WatchInstances(service string, update func([]upstream.InstanceSpec)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watchers == nil {
		f.watchers = map[int]func([]upstream.InstanceSpec){}
	}
	id := f.next
	f.next++
	f.watchers[id] = update
	update(specs(f.urls))
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.watchers, id)
	}
}

func (f *fakeSource) set(urls ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.urls = urls
	for _, w := range f.watchers {
		w(specs(urls))
	}
}

func (f *fakeSource) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watchers)
}

const registryConfig = baseConfig + `
  - name: registered
    path_prefix: /reg
    backend: reg
    auth: {anonymous: true}
`

func TestRegistryBackend_TakesRegisteredInstancesWithoutReload(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	src := &fakeSource{}
	h.rt.Instances = src
	// Add a backend with registered instances only.
	withBackend := replaceOnce(t, registryConfig, "backends:\n", "backends:\n  - name: reg\n    registry: {service: orders}\n")
	if diags := h.load(withBackend); diags != nil {
		t.Fatal(diags)
	}
	if res := h.do("GET", "/reg/x", nil, nil); res.StatusCode != 503 {
		t.Fatalf("no instance yet: %d", res.StatusCode)
	}
	src.set(h.beSrv.URL)
	if res := h.do("GET", "/reg/x", nil, nil); res.StatusCode != 200 {
		t.Fatalf("after registration: %d %s", res.StatusCode, readBody(t, res))
	}
	// A reload binds the new snapshot and lets go of the old one.
	if diags := h.load(withBackend + "\n# changed\nx-changed: 1\n"); diags != nil {
		t.Fatal(diags)
	}
	if n := src.count(); n != 1 {
		t.Fatalf("%d watchers after reload, want 1", n)
	}
	if res := h.do("GET", "/reg/x", nil, nil); res.StatusCode != 200 {
		t.Fatalf("after reload: %d", res.StatusCode)
	}
	src.set()
	if res := h.do("GET", "/reg/x", nil, nil); res.StatusCode != 503 {
		t.Fatalf("after the instance left: %d", res.StatusCode)
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q not in config", old)
	}
	return strings.Replace(s, old, new, 1)
}
