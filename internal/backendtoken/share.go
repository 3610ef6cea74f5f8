package backendtoken

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Gateways that share a store (storage.postgres) each keep their own
// private keys in their key directory and publish the public halves to the
// store; each serves all of them in its JWKS. So a backend that fetched
// the JWKS through a load balancer from one gateway verifies a token
// minted by another, and no private key is ever written outside its
// gateway.
//
// A key is published with an expiry: for a key that still signs (or will),
// a lease of MaxTokenTTL plus the clock skew, two sync intervals and a
// store call's timeout from the last sync, since a gateway that stops may
// have signed with it a moment before; for a retired key, the moment its last token has expired
// plus the clock skew. A key removed here is deleted from the store at
// the next sync. A gateway that stopped leaves its keys published until
// their leases run out, so that the tokens it minted stay verifiable.

// shareCallTimeout bounds one Sync's calls to the store.
const shareCallTimeout = 5 * time.Second

// shareLogEvery is how often at most a failing Sync is logged.
const shareLogEvery = time.Minute

// expiredKeep is how long after its expiry, on the clock of the gateway
// that sweeps, a published key's row is removed.
const expiredKeep = time.Hour

// wakeShare makes the sharing loop sync now (a key was added or removed).
func (k *Keys) wakeShare() {
	if k.share == nil {
		return
	}
	select {
	case k.shareKick <- struct{}{}:
	default:
	}
}

func (k *Keys) runShare() {
	defer k.wg.Done()
	ticker := time.NewTicker(k.syncEvery)
	defer ticker.Stop()
	for {
		select {
		case <-k.done:
			return
		case <-ticker.C:
		case <-k.shareKick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), shareCallTimeout)
		_ = k.Sync(ctx) // logged
		cancel()
	}
}

// Sync publishes these keys' public halves to the share, removes those
// retired here, and reads the other gateways' keys back into the JWKS.
// When the share fails, the JWKS keeps the other gateways' keys last read
// until each expires, and the failure is returned and logged (once a
// minute at most). Keys without a share have nothing to sync. Syncs run
// one at a time.
func (k *Keys) Sync(ctx context.Context) error {
	if k.share == nil {
		return nil
	}
	k.syncMu.Lock()
	defer k.syncMu.Unlock()
	now := k.now()
	own, gone, err := k.published(now)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	if len(gone) > 0 {
		if err := k.share.DeletePublishedKeys(ctx, gone); err != nil {
			errs = append(errs, fmt.Errorf("removing retired keys from the store: %w", err))
			k.mu.Lock()
			k.unpublish = append(k.unpublish, gone...) // again next time
			k.mu.Unlock()
		}
	}
	if err := k.share.PutPublishedKeys(ctx, own); err != nil {
		errs = append(errs, fmt.Errorf("publishing the keys to the store: %w", err))
	}
	listed, listErr := k.share.ListPublishedKeys(ctx, now)
	if listErr != nil {
		errs = append(errs, fmt.Errorf("reading the other gateways' keys: %w", listErr))
	}
	// Expired rows are removed an hour late, so that a gateway whose
	// clock runs ahead does not remove the others' keys before their
	// time; until then they are not listed, nor served.
	if _, err := k.share.DeleteExpiredPublishedKeys(ctx, now.Add(-expiredKeep)); err != nil {
		errs = append(errs, fmt.Errorf("removing expired keys from the store: %w", err))
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	var peers []peerKey
	if listErr == nil {
		var bad []string
		for _, p := range listed {
			pk, err := checkPublished(p)
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			peers = append(peers, pk)
		}
		if len(bad) > 0 {
			// Not a failure of the store: logged each time it is read, so
			// that it is not missed, but at most once a minute.
			errs = append(errs, fmt.Errorf("ignoring %d published keys that are not valid public signing keys: %s", len(bad), strings.Join(bad, "; ")))
		}
		slices.SortFunc(peers, func(a, b peerKey) int {
			return cmp.Or(strings.Compare(a.alg, b.alg), a.activates.Compare(b.activates), strings.Compare(a.kid, b.kid))
		})
	} else {
		// Fail static: the keys last read, each until it expires.
		for _, p := range k.peers {
			if p.expires.After(now) {
				peers = append(peers, p)
			}
		}
	}
	// The JWKS changes only when the set of keys does; the expiries (a
	// lease renewed at every sync) are kept for a failure of the store.
	changed := !slices.EqualFunc(peers, k.peers, func(x, y peerKey) bool { return x.kid == y.kid })
	k.peers = peers
	if changed {
		k.publish(slices.Clone(k.state.Load().keys))
	}
	err = errors.Join(errs...)
	if err != nil && now.Sub(k.shareFailed) >= shareLogEvery {
		k.shareFailed = now
		k.logger.Error("sharing the backend token signing keys with the other gateways; the JWKS keeps the keys last read, and the sync is retried", "error", err)
	}
	if err == nil && !k.shareFailed.IsZero() {
		k.shareFailed = time.Time{}
		k.logger.Info("sharing the backend token signing keys works again")
	}
	return err
}

// published returns this gateway's keys as the store keeps them, with
// their expiries at now, and takes the kids to remove from the store.
func (k *Keys) published(now time.Time) ([]store.PublishedKey, []string, error) {
	t := k.tuning.Load()
	k.mu.Lock()
	defer k.mu.Unlock()
	gone := k.unpublish
	k.unpublish = nil
	lease := now.Add(MaxTokenTTL + t.skew + 2*k.syncEvery + shareCallTimeout)
	st := k.state.Load()
	var out []store.PublishedKey
	var errs []error
	for _, alg := range []string{ES256, EdDSA} {
		ring := st.ofAlg(alg)
		since, unused := k.unused[alg]
		for i, key := range ring {
			exp := lease
			switch {
			case unused:
				exp = key.removeAt(since, t.skew)
			case i+1 < len(ring) && !ring[i+1].activates.After(now):
				exp = key.removeAt(ring[i+1].activates, t.skew) // retired
			}
			jwk, err := key.public.MarshalJSON()
			if err != nil {
				errs = append(errs, fmt.Errorf("key %s: %w", key.kid, err))
				continue
			}
			out = append(out, store.PublishedKey{KID: key.kid, Alg: key.alg, JWK: jwk, Activates: key.activates, Expires: exp})
		}
	}
	return out, gone, errors.Join(errs...)
}

// checkPublished accepts a published key only as a public signing key of
// an algorithm the gateway signs with, named by its thumbprint (RFC 7638),
// as the gateways publish theirs; what the JWKS serves is rebuilt from the
// key alone, so no other member of the stored JSON reaches a backend. A
// private key found in the store is refused, never served.
func checkPublished(p store.PublishedKey) (peerKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(p.JWK); err != nil {
		return peerKey{}, fmt.Errorf("key %q does not parse", p.KID)
	}
	if !jwk.IsPublic() {
		return peerKey{}, fmt.Errorf("key %q is not a public key", p.KID)
	}
	switch key := jwk.Key.(type) {
	case *ecdsa.PublicKey:
		if p.Alg != ES256 || key.Curve != elliptic.P256() {
			return peerKey{}, fmt.Errorf("key %q is not a P-256 key for ES256", p.KID)
		}
	case ed25519.PublicKey:
		if p.Alg != EdDSA {
			return peerKey{}, fmt.Errorf("key %q is an Ed25519 key published for %s", p.KID, p.Alg)
		}
	default:
		return peerKey{}, fmt.Errorf("key %q is of an unsupported type", p.KID)
	}
	if jwk.Algorithm != "" && jwk.Algorithm != p.Alg {
		return peerKey{}, fmt.Errorf("key %q says algorithm %s, published for %s", p.KID, jwk.Algorithm, p.Alg)
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil || base64.RawURLEncoding.EncodeToString(tp) != p.KID {
		return peerKey{}, fmt.Errorf("key %q is not named by its thumbprint", p.KID)
	}
	pub := jose.JSONWebKey{Key: jwk.Key, KeyID: p.KID, Algorithm: p.Alg, Use: "sig"}
	return peerKey{kid: p.KID, alg: p.Alg, activates: p.Activates, expires: p.Expires, public: pub}, nil
}
