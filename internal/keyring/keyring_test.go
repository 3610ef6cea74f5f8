package keyring_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/keyring"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/sqlite"
)

func TestRing_FollowsTheStore(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	st.CreateConsumer(ctx, store.Consumer{Name: "acme", Groups: []string{"partners"}, Scopes: []string{"orders:read"}, Created: now, Updated: now})
	st.PutKey(ctx, store.Key{Consumer: "acme", Slot: store.SlotPrimary, Hash: identity.HashKey("ghk_one"), Created: now})

	r, err := keyring.New(ctx, st, slog.New(slog.NewTextHandler(io.Discard, nil)), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := r.Lookup("ghk_one")
	if !ok || p.Consumer != "acme" || !p.HasGroup("partners") || !p.HasScope("orders:read") || p.Credential != identity.CredentialAPIKey {
		t.Fatalf("Lookup = %+v, %v", p, ok)
	}
	if _, ok := r.Lookup("ghk_two"); ok {
		t.Fatal("unknown key found")
	}

	// A change made through this process: Refresh applies it at once.
	st.PutKey(ctx, store.Key{Consumer: "acme", Slot: store.SlotSecondary, Hash: identity.HashKey("ghk_two"), Created: now})
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Lookup("ghk_two"); !ok {
		t.Fatal("new key not found after Refresh")
	}

	// A change made elsewhere: Run picks it up within the poll interval.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	st.DeleteKey(ctx, "acme", store.SlotPrimary)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := r.Lookup("ghk_one"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked key still found after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := r.Lookup("ghk_two"); !ok {
		t.Fatal("the other key stopped working")
	}
}
