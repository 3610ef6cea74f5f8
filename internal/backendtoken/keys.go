// Package backendtoken is how the gateway proves itself to backends
// without a shared secret: it keeps the gateway's signing keys (generated
// on disk, rotated on a schedule, each published before it signs and kept
// published until its last token has expired), serves them as a JWKS, and
// mints short-lived JWTs per backend and caller, cached until shortly
// before they expire.
package backendtoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Algorithms the gateway signs with.
const (
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// MaxTokenTTL bounds the lifetime of any token the gateway mints. A key
// loaded from disk is assumed to have signed tokens valid this long after
// the gateway started, since what it signed before a restart is unknown.
const MaxTokenTTL = time.Hour

// KeysOptions configure the signing keys kept in one directory.
type KeysOptions struct {
	// Dir holds one file per key, mode 0600, in a directory of mode 0700.
	Dir string
	// Interval is how long a key signs before its successor takes over.
	Interval time.Duration
	// Prepublish is how long a key is published before it signs.
	Prepublish time.Duration
	// ClockSkew is how long a retired key stays published after the last
	// token it signed has expired.
	ClockSkew time.Duration
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Share, when set, is a store that other gateways share: the keys'
	// public halves are published there, and the JWKS serves every
	// gateway's published keys besides these (see Sync). Private keys
	// stay in Dir.
	Share store.PublishedKeys
	// SyncInterval is how often Sync runs with Share; default
	// DefaultSyncInterval.
	SyncInterval time.Duration
}

// DefaultSyncInterval is how often keys with a Share publish theirs and
// read the others'.
const DefaultSyncInterval = 2 * time.Second

// Keys are the gateway's signing keys in one directory: one ring per
// algorithm. It is safe for concurrent use; readers (Signer, JWKS) never
// block on rotation, which replaces an immutable state behind an atomic
// pointer.
type Keys struct {
	dir    string
	logger *slog.Logger
	now    func() time.Time

	tuning atomic.Pointer[keyTuning]
	state  atomic.Pointer[keysState]

	mu     sync.Mutex // serializes changes of state and of the files
	wanted map[string]bool
	// unused holds, for each algorithm with keys that is not wanted, since
	// when: its keys leave the JWKS once their last token and that moment,
	// plus the clock skew, have passed.
	unused map[string]time.Time

	done chan struct{}
	kick chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	share     store.PublishedKeys
	syncEvery time.Duration
	// syncMu makes Syncs one at a time, so that one that read the store
	// earlier never replaces what a later one read.
	syncMu    sync.Mutex
	shareKick chan struct{}
	// peers are the other gateways' keys as last read from share, valid
	// public keys only; guarded by mu. unpublish holds the kids of keys
	// removed here that share may still hold.
	peers     []peerKey
	unpublish []string
	// shareFailed is when a Sync last logged a failure (mu): at most one a
	// minute.
	shareFailed time.Time
}

// peerKey is a public key another gateway published.
type peerKey struct {
	kid, alg  string
	activates time.Time
	expires   time.Time
	public    jose.JSONWebKey
}

type keyTuning struct {
	interval, prepublish, skew time.Duration
}

// keysState is immutable once stored.
type keysState struct {
	// keys are sorted by algorithm, then activation time.
	keys []*signingKey
	jwks []byte
	etag string
}

// signingKey is one key. Its fields are immutable, except lastExp.
type signingKey struct {
	kid       string
	alg       string
	created   time.Time
	activates time.Time
	signer    jose.Signer
	public    jose.JSONWebKey
	// lastExp is the latest exp (Unix seconds) of a token it signed.
	lastExp atomic.Int64
}

// keyFile is the on-disk form of a key.
type keyFile struct {
	Version   int             `json:"version"`
	Algorithm string          `json:"alg"`
	Created   time.Time       `json:"created"`
	Activates time.Time       `json:"activates"`
	JWK       json.RawMessage `json:"jwk"`
}

// OpenKeys loads the keys in opts.Dir (creating the directory if needed)
// and starts the background rotation. Keys of an algorithm are generated
// only once Use asks for the algorithm. Files that cannot be read are
// logged and ignored.
func OpenKeys(opts KeysOptions) (*Keys, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	k := &Keys{
		dir:    opts.Dir,
		logger: opts.Logger.With("key_dir", opts.Dir),
		now:    opts.Now,
		wanted: map[string]bool{},
		unused: map[string]time.Time{},
		done:   make(chan struct{}),
		kick:   make(chan struct{}, 1),

		share:     opts.Share,
		syncEvery: opts.SyncInterval,
		shareKick: make(chan struct{}, 1),
	}
	if k.syncEvery <= 0 {
		k.syncEvery = DefaultSyncInterval
	}
	k.SetTuning(opts.Interval, opts.Prepublish, opts.ClockSkew)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the key directory: %w", cleanPathError(err))
	}
	keys, err := k.load()
	if err != nil {
		return nil, err
	}
	k.publish(keys)
	k.wg.Add(1)
	go k.run()
	if k.share != nil {
		// The first read of the others' keys before the JWKS is served.
		ctx, cancel := context.WithTimeout(context.Background(), shareCallTimeout)
		_ = k.Sync(ctx) // a failure is logged; the loop retries
		cancel()
		k.wg.Add(1)
		go k.runShare()
	}
	return k, nil
}

// SetTuning changes the rotation interval, prepublication period and clock
// skew (e.g. on a configuration reload); they apply from the next rotation.
func (k *Keys) SetTuning(interval, prepublish, skew time.Duration) {
	k.tuning.Store(&keyTuning{interval: interval, prepublish: prepublish, skew: skew})
	k.wake()
}

// Use adds algorithms to those in use: a key is generated at once for an
// algorithm that has none, so that tokens can be signed as soon as Use
// returns. A configuration being compiled calls it; Retain, once the
// configuration is in place (or refused), says exactly which algorithms
// are in use.
//
// Use fails only when an algorithm asked for has no key that signs now: a
// failure of the rest of the rotation (a successor not yet written, a
// retired key not removed, on a full or read-only disk) is logged, and the
// rotation loop retries it, so that it does not refuse every reload while
// the keys in service still sign.
func (k *Keys) Use(ctx context.Context, algs ...string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, a := range algs {
		k.wanted[a] = true
		delete(k.unused, a)
	}
	err := k.rotateLocked(ctx)
	if err == nil {
		return nil
	}
	now := k.now()
	for _, a := range algs {
		if k.active(a, now) == nil {
			return err
		}
	}
	k.logger.Error("rotating the backend token signing keys; the keys in service sign meanwhile, and the rotation is retried", "error", err)
	return nil
}

// Retain says which algorithms are in use. An algorithm no longer used
// gets no new keys, and all its keys, the active one included, leave the
// JWKS (and the disk) once the last token each signed has expired and
// the clock skew has passed since the algorithm went out of use (or,
// for keys found on disk, since they were loaded).
func (k *Keys) Retain(algs ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	wanted := map[string]bool{}
	for _, a := range algs {
		wanted[a] = true
		delete(k.unused, a)
	}
	for a := range k.wanted {
		if !wanted[a] {
			k.unused[a] = now
		}
	}
	k.wanted = wanted
	k.wake()
}

// wake makes the rotation loop look again at what is due.
func (k *Keys) wake() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// Rotate does what is due at the current time: it generates the next key
// of each algorithm in use once its prepublication period has begun, and
// removes retired keys whose last token has expired. The background loop
// calls it; tests with an injected clock call it after moving the clock.
func (k *Keys) Rotate(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rotateLocked(ctx)
}

// Close stops the background rotation and sharing. Keys published to a
// share stay there until they expire: tokens they signed may still be in
// use.
func (k *Keys) Close() {
	k.once.Do(func() { close(k.done) })
	k.wg.Wait()
}

// Dir returns the key directory.
func (k *Keys) Dir() string { return k.dir }

// maxWait caps the sleep of the rotation loop, so that a change of the
// wall clock (or a missed deadline) is noticed within a minute.
const maxWait = time.Minute

func (k *Keys) run() {
	defer k.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	failWait := time.Second
	for {
		select {
		case <-k.done:
			return
		case <-k.kick:
		case <-timer.C:
		}
		// A rotation that fails is retried after 1 s, then 2, 4... up to
		// a minute, so that a full disk does not log every second.
		retry := time.Second
		if err := k.Rotate(context.Background()); err != nil {
			k.logger.Error("rotating the backend token signing keys; retrying", "error", err, "retry_in", failWait.String())
			retry = failWait
			failWait = min(2*failWait, maxWait)
		} else {
			failWait = time.Second
		}
		wait := maxWait
		if next := k.nextEvent(); !next.IsZero() {
			wait = min(wait, max(next.Sub(k.now()), retry))
		}
		timer.Reset(wait)
	}
}

// nextEvent returns when Rotate has something to do next, or zero.
func (k *Keys) nextEvent() time.Time {
	st := k.state.Load()
	t := k.tuning.Load()
	now := k.now()
	var next time.Time
	earliest := func(at time.Time) {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, alg := range []string{ES256, EdDSA} {
		keys := st.ofAlg(alg)
		if len(keys) == 0 {
			continue
		}
		if since, ok := k.unused[alg]; ok {
			for _, key := range keys {
				earliest(key.removeAt(since, t.skew))
			}
			continue
		}
		last := keys[len(keys)-1]
		earliest(last.activates.Add(t.interval - t.prepublish))
		for i, key := range keys[:len(keys)-1] {
			if succ := keys[i+1]; !succ.activates.After(now) {
				earliest(key.removeAt(succ.activates, t.skew))
			}
		}
	}
	return next
}

func (s *keysState) ofAlg(alg string) []*signingKey {
	var out []*signingKey
	for _, key := range s.keys {
		if key.alg == alg {
			out = append(out, key)
		}
	}
	return out
}

// removeAt is when a key that stopped signing at stopped may leave the
// JWKS: once the last token it signed has expired and stopped has passed,
// plus the clock skew. stopped is its successor's activation, or when its
// algorithm went out of use (a request that began before may still sign
// with it).
func (key *signingKey) removeAt(stopped time.Time, skew time.Duration) time.Time {
	last := time.Unix(key.lastExp.Load(), 0)
	if stopped.After(last) {
		last = stopped
	}
	return last.Add(skew)
}

func (k *Keys) rotateLocked(ctx context.Context) error {
	now := k.now()
	t := k.tuning.Load()
	st := k.state.Load()
	keys := slices.Clone(st.keys)
	changed := false
	var errs []error
	remove := func(key *signingKey, why string) {
		if err := os.Remove(k.path(key.kid)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing retired key %s: %w", key.kid, cleanPathError(err)))
			return
		}
		keys = slices.DeleteFunc(keys, func(x *signingKey) bool { return x == key })
		changed = true
		if k.share != nil {
			k.unpublish = append(k.unpublish, key.kid)
		}
		k.logger.Info(why, "kid", key.kid, "alg", key.alg)
	}
	for _, alg := range []string{ES256, EdDSA} {
		ring := st.ofAlg(alg)
		if !k.wanted[alg] {
			if len(ring) == 0 {
				delete(k.unused, alg)
				continue
			}
			since, ok := k.unused[alg]
			if !ok { // keys found on disk, of an algorithm never used since
				since = now
				k.unused[alg] = since
			}
			for _, key := range ring {
				if now.After(key.removeAt(since, t.skew)) {
					remove(key, "backend token signing key of an algorithm no longer used removed from the JWKS")
				}
			}
			continue
		}
		// Drop retired keys whose tokens have all expired; never the
		// active one (the newest that has activated).
		active := -1
		for i, key := range ring {
			if !key.activates.After(now) {
				active = i
			}
		}
		for i := 0; i < active; i++ {
			if now.After(ring[i].removeAt(ring[i+1].activates, t.skew)) {
				remove(ring[i], "backend token signing key retired from the JWKS")
			}
		}
		var activates time.Time
		switch {
		case len(ring) == 0:
			// The very first key signs at once: nothing could have been
			// published before it.
			activates = now
		case ring[len(ring)-1].activates.Add(t.interval - t.prepublish).After(now):
			continue // the newest key is not due for a successor
		default:
			newest := ring[len(ring)-1]
			if newest.activates.After(now) {
				continue // the successor is already published
			}
			// Normally the successor takes over one interval after the
			// newest key; if that moment is too close (the gateway was
			// down), it is pushed back so that it is published for the
			// whole prepublication period first.
			activates = newest.activates.Add(t.interval)
			if earliest := now.Add(t.prepublish); activates.Before(earliest) {
				activates = earliest
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		key, err := k.generate(alg, now, activates)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, key)
		changed = true
		k.logger.Info("backend token signing key generated", "kid", key.kid, "alg", alg, "signs_from", activates.UTC().Format(time.RFC3339))
	}
	if changed {
		k.publish(keys)
		k.wakeShare()
	}
	return errors.Join(errs...)
}

// publish stores a new state with its JWKS document: keys, then the
// other gateways' keys (k.peers, which the caller holds mu for, or which
// are not set yet) that are not among them.
func (k *Keys) publish(keys []*signingKey) {
	slices.SortStableFunc(keys, func(a, b *signingKey) int {
		if c := strings.Compare(a.alg, b.alg); c != 0 {
			return c
		}
		return a.activates.Compare(b.activates)
	})
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys)+len(k.peers))}
	own := make(map[string]bool, len(keys))
	for _, key := range keys {
		set.Keys = append(set.Keys, key.public)
		own[key.kid] = true
	}
	for _, p := range k.peers { // sorted by algorithm, activation and kid
		if !own[p.kid] {
			set.Keys = append(set.Keys, p.public)
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		panic(fmt.Sprintf("backendtoken: JWKS does not encode: %v", err))
	}
	sum := sha256.Sum256(body)
	k.state.Store(&keysState{keys: keys, jwks: body, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`})
}

// active returns the key of alg that signs at now: the newest one that has
// activated.
func (k *Keys) active(alg string, now time.Time) *signingKey {
	var found *signingKey
	for _, key := range k.state.Load().keys {
		if key.alg == alg && !key.activates.After(now) {
			found = key
		}
	}
	return found
}

// KeyIDs returns the kids in the JWKS, for tests and diagnostics.
func (k *Keys) KeyIDs() []string {
	var out []string
	for _, key := range k.state.Load().keys {
		out = append(out, key.kid)
	}
	return out
}

func (k *Keys) path(kid string) string { return filepath.Join(k.dir, kid+".json") }

// generate makes a key, writes it to disk and returns it.
func (k *Keys) generate(alg string, now, activates time.Time) (*signingKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generating a %s key: %w", alg, err)
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: alg, Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	raw, err := jwk.MarshalJSON()
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(keyFile{Version: 1, Algorithm: alg, Created: now.UTC(), Activates: activates.UTC(), JWK: raw})
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(k.dir, jwk.KeyID+".json", data); err != nil {
		return nil, fmt.Errorf("writing key %s: %w", jwk.KeyID, err)
	}
	return newSigningKey(jwk, alg, now, activates)
}

func newSigningKey(jwk jose.JSONWebKey, alg string, created, activates time.Time) (*signingKey, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jwk},
		(&jose.SignerOptions{}).WithType(TokenType))
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", jwk.KeyID, err)
	}
	pub := jwk.Public()
	pub.Algorithm, pub.Use = alg, "sig"
	return &signingKey{kid: jwk.KeyID, alg: alg, created: created, activates: activates, signer: signer, public: pub}, nil
}

// load reads every key file in the directory.
func (k *Keys) load() ([]*signingKey, error) {
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		return nil, fmt.Errorf("reading the key directory: %w", cleanPathError(err))
	}
	loadedAt := k.now()
	var keys []*signingKey
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		key, err := k.loadFile(name)
		if err != nil {
			k.logger.Error("ignoring an unreadable signing key file", "file", name, "error", err)
			continue
		}
		// What the key signed before the restart is unknown: assume
		// tokens as long-lived as allowed.
		key.lastExp.Store(loadedAt.Add(MaxTokenTTL).Unix())
		keys = append(keys, key)
	}
	return keys, nil
}

func (k *Keys) loadFile(name string) (*signingKey, error) {
	p := filepath.Join(k.dir, name)
	info, err := os.Stat(p)
	if err != nil {
		return nil, cleanPathError(err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		k.logger.Warn("a signing key file was readable by others; restricting it to 0600", "file", name, "mode", info.Mode().Perm().String())
		if err := os.Chmod(p, 0o600); err != nil {
			return nil, cleanPathError(err)
		}
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, cleanPathError(err)
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 {
		return nil, errors.New("not a version 1 key file")
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(f.JWK); err != nil {
		return nil, errors.New("the key does not parse")
	}
	if jwk.IsPublic() || jwk.KeyID+".json" != name {
		return nil, errors.New("not a private key named by its kid")
	}
	switch jwk.Key.(type) {
	case *ecdsa.PrivateKey:
		if f.Algorithm != ES256 {
			return nil, errors.New("the algorithm does not match the key")
		}
	case ed25519.PrivateKey:
		if f.Algorithm != EdDSA {
			return nil, errors.New("the algorithm does not match the key")
		}
	default:
		return nil, errors.New("unsupported key type")
	}
	return newSigningKey(jwk, f.Algorithm, f.Created, f.Activates)
}

// writeFileAtomic writes data to dir/name with mode 0600: to a temporary
// file first, synced, then renamed, so that a crash leaves either the old
// file or the new one.
func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return cleanPathError(err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return cleanPathError(err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return cleanPathError(err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return cleanPathError(err)
	}
	if err := f.Close(); err != nil {
		return cleanPathError(err)
	}
	return cleanPathError(os.Rename(tmp, filepath.Join(dir, name)))
}

func cleanPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return fmt.Errorf("%s: %w", le.New, le.Err)
	}
	return err
}
