package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults of KeySetOptions.
const (
	DefaultRefreshInterval = time.Hour
	DefaultCooldown        = 30 * time.Second
	DefaultFetchTimeout    = 5 * time.Second
	// initialBackoff is the first retry delay after a failed fetch; it
	// doubles up to the refresh interval.
	initialBackoff = time.Second
)

// KeySetOptions say where the signing keys of one issuer are and how they
// are kept fresh.
type KeySetOptions struct {
	// Issuer is the exact iss value. Unless JWKSURL is set, the JWKS URL is
	// read from Issuer + "/.well-known/openid-configuration".
	Issuer string
	// JWKSURL, when set, is fetched directly and discovery is skipped.
	JWKSURL string
	// RootCAs verify the IdP's TLS certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// CAFile is the file RootCAs were read from. It is only part of the
	// identity of the set (see KeySets.Get); the file is not read here.
	CAFile string
	// RefreshInterval is how often keys are refetched in the background
	// (default 1h). It also caps the retry backoff after a failure.
	RefreshInterval time.Duration
	// Cooldown is the least time between two fetches caused by tokens
	// whose kid is unknown (default 30s).
	Cooldown time.Duration
	// Timeout bounds one discovery or JWKS request (default 5s).
	Timeout time.Duration
}

// Hooks let the caller observe key sets, e.g. to count fetches in metrics.
// Hooks are called synchronously from the fetching goroutine and must be
// quick and safe for concurrent use; nil hooks are skipped.
type Hooks struct {
	// OnFetch is told the outcome of every fetch attempt: FetchOK ("ok"),
	// FetchNotModified ("not_modified") or FetchError ("error"). provider
	// is the name the set was first created with.
	OnFetch func(provider string, outcome string)
}

// setKey is the identity of a key set across configuration reloads.
type setKey struct {
	issuer, jwksURL, caFile string
}

// tuning holds the options of a set that a reload may change in place.
type tuning struct {
	refresh, cooldown, timeout time.Duration
}

// KeySets is the registry of run-time JWKS caches. It outlives
// configuration snapshots: a reload asks for the sets it needs with Get
// (same issuer, JWKS URL and CA file → the same, already warm set), swaps
// its snapshot in, then calls Retain with the sets the new snapshot uses.
// It is safe for concurrent use.
type KeySets struct {
	logger *slog.Logger
	hooks  Hooks
	now    func() time.Time

	mu     sync.Mutex
	sets   map[setKey]*KeySet
	closed bool
}

// NewKeySets returns an empty registry. A nil logger discards.
func NewKeySets(logger *slog.Logger, hooks Hooks) *KeySets {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &KeySets{logger: logger, hooks: hooks, now: time.Now, sets: map[setKey]*KeySet{}}
}

// Get returns the set for (opts.Issuer, opts.JWKSURL, opts.CAFile),
// creating it, and starting its background refresh, if there is none.
// For an existing set, the durations and RootCAs of opts replace the old
// ones (a CA file whose content changed gets a new HTTP client), and its
// logs and fetch reports take name (a provider renamed in the
// configuration, its issuer, JWKS URL and CA file unchanged, keeps its
// set and cache). Get does not fetch: call
// Refresh at startup, or let the first Key call fetch.
func (r *KeySets) Get(name string, opts KeySetOptions) *KeySet {
	s, apply := r.Prepare(name, opts)
	if apply != nil {
		apply()
	}
	return s
}

// Prepare is Get for a configuration being compiled, which may yet be
// refused: a new set is made at once (Retain closes it if the
// configuration is refused), but the options of an existing set, which
// the configuration in service uses, are returned as apply, to be called
// once the new configuration is in place (nil for a new set).
func (r *KeySets) Prepare(name string, opts KeySetOptions) (set *KeySet, apply func()) {
	k := setKey{issuer: opts.Issuer, jwksURL: opts.JWKSURL, caFile: opts.CAFile}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sets[k]; ok {
		return s, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			s.update(opts)
			if s.label.Load().name != name {
				s.label.Store(r.labelOf(name, opts.Issuer))
			}
		}
	}
	s := &KeySet{
		issuer:         opts.Issuer,
		configuredJWKS: opts.JWKSURL,
		jwksURL:        opts.JWKSURL,
		roots:          opts.RootCAs,
		hooks:          r.hooks,
		now:            r.now,
		done:           make(chan struct{}),
		kick:           make(chan struct{}, 1),
		lastFetch:      time.Now(),
	}
	s.label.Store(r.labelOf(name, opts.Issuer))
	s.tuning.Store(tuningOf(opts))
	s.client.Store(newHTTPClient(opts.RootCAs))
	if r.closed {
		s.closed = true
		close(s.done)
		return s, nil
	}
	r.sets[k] = s
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// keySetLabel is the provider's name a set logs and reports its fetches
// under: the name in the configuration in service.
type keySetLabel struct {
	name   string
	logger *slog.Logger
}

func (r *KeySets) labelOf(name, issuer string) *keySetLabel {
	return &keySetLabel{name: name, logger: r.logger.With("provider", name, "issuer", issuer)}
}

// Retain closes and forgets every set that is not in keep. Call it after a
// new snapshot is in place (and after a failed reload, with the sets of the
// running snapshot, to close sets the failed attempt created).
func (r *KeySets) Retain(keep []*KeySet) {
	wanted := make(map[*KeySet]bool, len(keep))
	for _, s := range keep {
		wanted[s] = true
	}
	var drop []*KeySet
	r.mu.Lock()
	for k, s := range r.sets {
		if !wanted[s] {
			delete(r.sets, k)
			drop = append(drop, s)
		}
	}
	r.mu.Unlock()
	for _, s := range drop {
		s.close()
	}
}

// Close closes every set and waits for their goroutines. Sets obtained
// from Get afterwards are closed already.
func (r *KeySets) Close() {
	r.mu.Lock()
	r.closed = true
	sets := r.sets
	r.sets = map[setKey]*KeySet{}
	r.mu.Unlock()
	for _, s := range sets {
		s.close()
	}
}

func tuningOf(o KeySetOptions) *tuning {
	t := &tuning{refresh: o.RefreshInterval, cooldown: o.Cooldown, timeout: o.Timeout}
	if t.refresh <= 0 {
		t.refresh = DefaultRefreshInterval
	}
	if t.cooldown <= 0 {
		t.cooldown = DefaultCooldown
	}
	if t.timeout <= 0 {
		t.timeout = DefaultFetchTimeout
	}
	return t
}

// KeySet is the cached JWKS of one issuer. Readers never block on a fetch
// unless they need one: the keys are an immutable map behind an atomic
// pointer, replaced whole by each successful fetch.
type KeySet struct {
	label          atomic.Pointer[keySetLabel]
	issuer         string
	configuredJWKS string
	hooks          Hooks
	now            func() time.Time

	tuning atomic.Pointer[tuning]
	client atomic.Pointer[http.Client]
	roots  *x509.CertPool // guarded by the registry's mu

	keys atomic.Pointer[keyMap] // nil until the first successful fetch

	fetchMu sync.Mutex // serializes fetches; guards jwksURL, etag and gens
	gens    uint64     // the last keyMap.gen given
	jwksURL string     // configured or discovered
	etag    string

	mu         sync.Mutex // guards the fields below
	inflight   *fetchCall // the on-demand fetch in progress, if any
	lastDemand time.Time  // start of the last on-demand fetch (s.now clock)
	failures   int        // consecutive failed fetches
	lastFetch  time.Time  // when the last fetch ended (wall clock; schedules run)
	lastErr    error      // cause of the last failed fetch
	closed     bool

	done chan struct{} // closed by close
	kick chan struct{} // wakes run to reschedule after a fetch
	wg   sync.WaitGroup
}

// fetchCall is one on-demand fetch that concurrent callers share.
type fetchCall struct {
	done chan struct{}
	err  error // set before done is closed
}

var (
	errCooldown = errors.New("keys were refetched less than the cooldown ago")
	errClosed   = errors.New("key set is closed")
)

// update applies the tunable options of a reloaded config. Called with
// the registry's mu held.
func (s *KeySet) update(opts KeySetOptions) {
	s.tuning.Store(tuningOf(opts))
	if !s.roots.Equal(opts.RootCAs) {
		s.roots = opts.RootCAs
		old := s.client.Swap(newHTTPClient(opts.RootCAs))
		old.CloseIdleConnections()
	}
	s.signal()
}

// Ready reports whether keys have been fetched successfully at least once.
func (s *KeySet) Ready() bool { return s.keys.Load() != nil }

// Refresh fetches the keys now, whatever the cooldown and schedule say
// (used at startup, so that the first requests find warm keys). On failure
// the cached keys, if any, are kept and the error says why.
func (s *KeySet) Refresh(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errClosed
	}
	return s.fetchNow(ctx)
}

// Key returns the keys that may verify a token signed with alg and
// carrying kid: the keys with that kid (every key when kid is empty) whose
// alg, if the JWK has one, equals alg and whose type fits alg. Keys with
// use other than "sig", symmetric and private keys are never returned.
//
// When none is cached the set is refetched, at most once per Cooldown and
// shared by concurrent callers; if there is still none the error is an
// *Error with ReasonUnknownKey, or ReasonIssuerUnavailable when keys have
// never been fetched. The returned keys are shared: do not modify them.
func (s *KeySet) Key(ctx context.Context, kid, alg string) ([]*jose.JSONWebKey, error) {
	entries, _, err := s.candidates(ctx, kid, alg)
	if err != nil {
		return nil, err
	}
	out := make([]*jose.JSONWebKey, len(entries))
	for i, e := range entries {
		out[i] = e.jwk
	}
	return out, nil
}

// candidates returns the keys of Key and the generation of the set they
// were taken from.
func (s *KeySet) candidates(ctx context.Context, kid, alg string) ([]*keyEntry, uint64, *Error) {
	if m := s.keys.Load(); m != nil {
		if c := m.candidates(kid, alg); len(c) > 0 {
			return c, m.gen, nil
		}
		if kid != "" && m.hasKid(kid) {
			// The kid is known: a refetch would not change its type.
			return nil, 0, fail(ReasonUnknownKey, "the key with this key id does not fit the token's algorithm", nil)
		}
	}
	ferr := s.demandFetch(ctx)
	m := s.keys.Load()
	if m == nil {
		cause := ferr
		if errors.Is(ferr, errCooldown) {
			s.mu.Lock()
			if s.lastErr != nil {
				cause = s.lastErr
			}
			s.mu.Unlock()
		}
		return nil, 0, fail(ReasonIssuerUnavailable, "the issuer's signing keys are not available", cause)
	}
	if c := m.candidates(kid, alg); len(c) > 0 {
		return c, m.gen, nil
	}
	if errors.Is(ferr, errCooldown) {
		ferr = nil
	}
	return nil, 0, fail(ReasonUnknownKey, "no signing key of the issuer matches the token", ferr)
}

// refetched asks for a fresh copy of the keys after a signature that no
// cached candidate verified (an issuer that rotated its key without a
// kid, or reused a kid), at most once per Cooldown as for an unknown kid,
// and returns the candidates if the keys changed since generation gen.
func (s *KeySet) refetched(ctx context.Context, gen uint64, kid, alg string) []*keyEntry {
	_ = s.demandFetch(ctx)
	m := s.keys.Load()
	if m == nil || m.gen == gen {
		return nil
	}
	return m.candidates(kid, alg)
}

// hasKey reports whether the key is still in the set; the token cache asks
// it on every hit. gen is the generation of a set known to hold the key
// (holdingGen; 0 for none): while the set's keys are those of that
// generation, the answer is yes without a lookup (a hash of the key's
// identity, its kid and thumbprint, and a compare of both).
func (s *KeySet) hasKey(id keyIdent, gen uint64) bool {
	m := s.keys.Load()
	if m == nil {
		return false
	}
	if gen != 0 && m.gen == gen {
		return true
	}
	_, ok := m.idents[id]
	return ok
}

// holdingGen returns the generation of the set's keys when they hold the
// key, else 0.
func (s *KeySet) holdingGen(id keyIdent) uint64 {
	if m := s.keys.Load(); m != nil {
		if _, ok := m.idents[id]; ok {
			return m.gen
		}
	}
	return 0
}

// demandFetch fetches the keys for a caller that found none fitting. At
// most one such fetch starts per cooldown; callers that come while one is
// in progress wait for it (or for their ctx) and share its result. The
// fetch itself runs on its own goroutine, bound to the set's lifetime, so
// a caller that gives up does not cancel it for the others.
func (s *KeySet) demandFetch(ctx context.Context) error {
	s.mu.Lock()
	c := s.inflight
	if c == nil {
		if s.closed {
			s.mu.Unlock()
			return errClosed
		}
		now := s.now()
		if !s.lastDemand.IsZero() && now.Sub(s.lastDemand) < s.tuning.Load().cooldown {
			s.mu.Unlock()
			return errCooldown
		}
		s.lastDemand = now
		c = &fetchCall{done: make(chan struct{})}
		s.inflight = c
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			fctx, cancel := s.lifetimeContext()
			c.err = s.fetchNow(fctx)
			cancel()
			s.mu.Lock()
			s.inflight = nil
			s.mu.Unlock()
			close(c.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetchNow performs one fetch, stores the keys it got, records the outcome
// and logs a failure. Fetches are serialized.
func (s *KeySet) fetchNow(ctx context.Context) error {
	s.fetchMu.Lock()
	outcome, keys, err := s.fetchOnce(ctx)
	if keys != nil {
		// A fetch that brings the same keys (by kid and thumbprint) keeps
		// their generation; other keys get a new one.
		if old := s.keys.Load(); old != nil && maps.Equal(old.idents, keys.idents) {
			keys.gen = old.gen
		} else {
			s.gens++
			keys.gen = s.gens
		}
		old := s.keys.Swap(keys)
		if old == nil {
			s.label.Load().logger.Info("identity: signing keys fetched", "kids", keys.kids())
		} else {
			s.label.Load().logger.Debug("identity: signing keys refreshed", "kids", keys.kids())
		}
	}
	s.fetchMu.Unlock()

	s.mu.Lock()
	s.lastFetch = time.Now()
	if err != nil {
		s.failures++
		s.lastErr = err
	} else {
		s.failures = 0
		s.lastErr = nil
	}
	failures := s.failures
	s.mu.Unlock()

	if err != nil {
		s.label.Load().logger.Warn("identity: fetching signing keys failed; keeping the cached keys",
			"err", err, "consecutive_failures", failures, "have_keys", s.Ready())
	}
	if s.hooks.OnFetch != nil {
		s.hooks.OnFetch(s.label.Load().name, outcome)
	}
	s.signal()
	return err
}

// signal wakes the refresh loop so it reschedules.
func (s *KeySet) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// nextDelay is the wait before the next background fetch, counted from
// the end of the last fetch of any kind (or from the set's creation): the
// refresh interval after a success, else an exponential backoff from 1s
// capped at the refresh interval. Being relative to the last fetch, it is
// not pushed back by reloads that wake the loop.
func (s *KeySet) nextDelay() time.Duration {
	refresh := s.tuning.Load().refresh
	s.mu.Lock()
	failures, last := s.failures, s.lastFetch
	s.mu.Unlock()
	wait := refresh
	if failures > 0 {
		wait = initialBackoff
		for i := 1; i < failures && wait < refresh; i++ {
			wait *= 2
		}
		wait = min(wait, refresh)
	}
	return max(wait-time.Since(last), 0)
}

// run is the background refresh loop. It stops when the set is closed.
func (s *KeySet) run() {
	defer s.wg.Done()
	t := time.NewTimer(s.nextDelay())
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.kick:
		case <-t.C:
			ctx, cancel := s.lifetimeContext()
			_ = s.fetchNow(ctx) // logged and counted by fetchNow
			cancel()
		}
		t.Reset(s.nextDelay())
	}
}

// lifetimeContext returns a context that is cancelled when the set closes.
func (s *KeySet) lifetimeContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan struct{})
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-stop:
		}
	}()
	return ctx, func() {
		close(stop)
		cancel()
	}
}

// close stops the refresh loop and any fetch in progress and waits for
// them. The cached keys stay usable by snapshots still holding the set.
func (s *KeySet) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	s.client.Load().CloseIdleConnections()
}
