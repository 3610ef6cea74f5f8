package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-dev/gatehouse/internal/admin"
	"github.com/gatehouse-dev/gatehouse/internal/anomaly"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/keyring"
	"github.com/gatehouse-dev/gatehouse/internal/quota"
	"github.com/gatehouse-dev/gatehouse/internal/ratelimit"
	"github.com/gatehouse-dev/gatehouse/internal/registry"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// state is what the server keeps in the store and the components over
// it: the registry, the key ring and the audit recorder.
type state struct {
	store       store.Store
	registry    *registry.Registry
	keys        *keyring.Ring
	audit       *audit.Recorder
	anomalies   *anomaly.Detector // stopped before the store closes
	maxCallers  int               // anomalies.max_callers as written at start
	dataDir     string
	postgres    *config.PostgresStorage // as the store was opened with (nil: the embedded store)
	redis       redis.UniversalClient   // the rate limits' (nil: in memory)
	redisLimits *ratelimit.Registry     // their registry (nil: in memory); closed before redis
	redisCfg    *config.RedisStorage

	stop     context.CancelFunc // stops the background loops
	bg       sync.WaitGroup
	closeOne sync.Once
}

// openState opens the store in the configured data directory and builds
// the components that use it, and plugs them into the gateway runtime.
func (s *Server) openState(ctx context.Context, doc *config.Document) error {
	dir := s.opts.DataDir
	if dir == "" {
		dir = doc.Config.Storage.EffectiveDataDir()
	}
	st, shared, err := s.openStore(ctx, doc, dir)
	if err != nil {
		return err
	}
	sync := doc.Config.Storage.SyncInterval()
	policy, err := registry.PolicyFromConfig(doc.Config.Registry)
	if err != nil {
		st.Close()
		return err
	}
	rec := audit.NewRecorder(st, s.logger, nil)
	reg, err := registry.New(ctx, registry.Options{Store: st, Audit: rec, Logger: s.logger, Policy: policy, Shared: shared, SyncInterval: sync})
	if err != nil {
		st.Close()
		return err
	}
	keys, err := keyring.New(ctx, st, s.logger, 0)
	if err != nil {
		st.Close()
		return fmt.Errorf("reading consumers from the store: %w", err)
	}
	s.state = &state{store: st, registry: reg, keys: keys, audit: rec, dataDir: dir, postgres: doc.Config.Storage.Postgres, redisCfg: doc.Config.Storage.Redis}
	rt := s.gw.Runtime()
	rt.DataDir = dir // what the compiles keep in it (quota counters, signing keys) stays here until a restart
	// Quota counters live in the store (they survive restarts with it);
	// gateways that share a store add their counts to the shared ones.
	if shared {
		err = rt.Quotas.OpenShared(quotaStore{st}, sync)
	} else {
		err = rt.Quotas.OpenStore(quotaStore{st})
	}
	if err != nil {
		st.Close()
		return fmt.Errorf("reading quota counters from the store: %w", err)
	}
	if shared && rt.BackendIdentity != nil {
		// Before the first compile opens the keys.
		rt.BackendIdentity.Share(st, sync)
	}
	rt.Instances = registrySource{reg}
	rt.ConsumerKeys = keys
	// The anomaly detector follows callers across reloads; its
	// first-access memory is in the store, shared with the gateways that
	// share it. A snapshot without anomalies.enabled never calls it.
	rt.Anomalies = anomaly.New(anomaly.Options{
		MaxCallers: doc.Config.Anomalies.MaxCallers, Logger: s.logger, Audit: rec, Seen: st,
		Registerer: s.metrics.Registry,
	})
	rt.Anomalies.Start()
	s.state.anomalies, s.state.maxCallers = rt.Anomalies, doc.Config.Anomalies.MaxCallers
	if rc := doc.Config.Storage.Redis; rc != nil {
		client, err := s.openRedis(ctx, rc)
		if err != nil {
			_ = rt.Quotas.Close()
			st.Close()
			return err
		}
		s.state.redis = client
		// Before the first compile: no limiter exists yet.
		rt.RateLimits = s.redisLimits(client, rc)
		s.state.redisLimits = rt.RateLimits
	}
	return nil
}

// redisLimits returns the registry of rate limits kept in Redis, with
// storage.redis.on_failure, its log lines and metrics.
func (s *Server) redisLimits(client redis.Scripter, rc *config.RedisStorage) *ratelimit.Registry {
	o := ratelimit.RedisOptions{Timeout: rc.Timeout.Or(config.DefaultRedisTimeout)}
	then := "refusing rate-limited requests with 503 rate_limit_unavailable"
	switch rc.OnFailure {
	case config.RedisOnFailureLocal:
		o.OnFailure = ratelimit.FailLocal
		then = "deciding rate limits in this gateway's memory"
	case config.RedisOnFailureAllow:
		o.OnFailure = ratelimit.FailOpen
		then = "letting rate-limited requests through unchecked"
	}
	failures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_ratelimit_redis_failures_total",
		Help: "Rate-limit decisions Redis failed (an error, or no answer within storage.redis.timeout); storage.redis.on_failure says what they did.",
	})
	skipped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_ratelimit_redis_skipped_total",
		Help: "Rate-limit decisions that did not ask Redis because it failed moments ago: refused with 503 (on_failure deny), decided in memory (local) or let through unchecked (allow).",
	})
	o.Failed = func(error) { failures.Inc() }
	o.Skipped = skipped.Inc
	// The lines say when Redis starts failing and when it is back, at
	// most once a minute each way, so that a flapping Redis does not
	// flood the log; the metrics count everything.
	var mu sync.Mutex
	var lastDown time.Time
	downLogged := false
	o.Down = func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if downLogged || time.Since(lastDown) < time.Minute {
			return
		}
		lastDown, downLogged = time.Now(), true
		s.logger.Warn("Redis is failing; rate-limit decisions stop asking it and retry it every second", "error", err, "then", then)
	}
	o.Up = func() {
		mu.Lock()
		defer mu.Unlock()
		if !downLogged {
			return
		}
		downLogged = false
		s.logger.Info("Redis answers again; rate-limit decisions are shared again")
	}
	reg := ratelimit.NewRedisRegistry(client, o)
	if s.metrics != nil {
		s.metrics.Registry.MustRegister(failures, skipped, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_ratelimit_redis_available",
			Help: "1 while rate-limit decisions ask Redis, 0 while they skip it after failures (storage.redis.on_failure decides then, and a probe asks Redis every second until it answers).",
		}, func() float64 {
			if reg.RedisAvailable() {
				return 1
			}
			return 0
		}))
	}
	return reg
}

// openRedis connects to storage.redis (one server, or a Redis Cluster
// with storage.redis.cluster) and checks that it answers.
func (s *Server) openRedis(ctx context.Context, rc *config.RedisStorage) (redis.UniversalClient, error) {
	var password string
	if !rc.Password.IsZero() {
		v, err := s.opts.Secrets.Resolve(ctx, rc.Password)
		if err != nil {
			return nil, fmt.Errorf("storage.redis.password: %w", err)
		}
		password = v.Reveal()
	}
	timeout := rc.Timeout.Or(config.DefaultRedisTimeout)
	var client redis.UniversalClient
	var addr string
	var secrets []string // to redact from errors
	if password != "" {
		secrets = append(secrets, password)
	}
	if rc.SentinelMaster != "" {
		o, err := redis.ParseFailoverURL(rc.URL)
		if err != nil {
			return nil, errors.New("storage.redis.url cannot be used") // its error could repeat the URL
		}
		o.MasterName = rc.SentinelMaster
		o.Password = password
		if !rc.SentinelPassword.IsZero() {
			v, err := s.opts.Secrets.Resolve(ctx, rc.SentinelPassword)
			if err != nil {
				return nil, fmt.Errorf("storage.redis.sentinel_password: %w", err)
			}
			o.SentinelPassword = v.Reveal()
			secrets = append(secrets, o.SentinelPassword)
		}
		o.DialTimeout = 5 * time.Second
		o.ReadTimeout, o.WriteTimeout = timeout, timeout
		o.ContextTimeoutEnabled = true
		o.ClientName = "gatehouse"
		addr = "sentinels " + strings.Join(o.SentinelAddrs, ",") + " master " + rc.SentinelMaster
		if o.Dialer, err = secureRedisTLS(o.TLSConfig, rc.TLS, true, o.DialTimeout, s.logger); err != nil {
			return nil, err
		}
		client = redis.NewFailoverClient(o)
	} else if rc.Cluster {
		o, err := redis.ParseClusterURL(rc.URL)
		if err != nil {
			return nil, errors.New("storage.redis.url cannot be used") // its error could repeat the URL
		}
		if password != "" {
			o.Password = password
		}
		o.DialTimeout = 5 * time.Second
		o.ReadTimeout, o.WriteTimeout = timeout, timeout
		o.ContextTimeoutEnabled = true
		o.ClientName = "gatehouse"
		addr = strings.Join(o.Addrs, ",")
		if o.Dialer, err = secureRedisTLS(o.TLSConfig, rc.TLS, true, o.DialTimeout, s.logger); err != nil {
			return nil, err
		}
		client = redis.NewClusterClient(o)
	} else {
		o, err := redis.ParseURL(rc.URL)
		if err != nil {
			return nil, errors.New("storage.redis.url cannot be used") // its error could repeat the URL
		}
		if password != "" {
			o.Password = password
		}
		o.DialTimeout = 5 * time.Second
		o.ReadTimeout, o.WriteTimeout = timeout, timeout
		o.ContextTimeoutEnabled = true
		o.ClientName = "gatehouse"
		addr = o.Addr
		if o.Dialer, err = secureRedisTLS(o.TLSConfig, rc.TLS, false, o.DialTimeout, s.logger); err != nil {
			return nil, err
		}
		client = redis.NewClient(o)
	}
	routeRedisLogs(s.logger, secrets)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	redact := func(err error) string {
		msg := err.Error()
		for _, p := range secrets {
			msg = strings.ReplaceAll(msg, p, "REDACTED")
		}
		return msg
	}
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("storage.redis: connecting to Redis at %s: %s", addr, redact(err))
	}
	if cc, ok := client.(*redis.ClusterClient); ok {
		// Every primary must answer: a cluster missing one would fail
		// the decisions of its slots.
		if err := cc.ForEachMaster(pctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }); err != nil {
			client.Close()
			return nil, fmt.Errorf("storage.redis: a node of the Redis Cluster at %s: %s", addr, redact(err))
		}
		s.logger.Info("rate-limit buckets are kept in a Redis Cluster, shared with the gateways that use it", "redis", addr)
		return client, nil
	}
	s.logger.Info("rate-limit buckets are kept in Redis, shared with the gateways that use it", "redis", addr)
	return client, nil
}

// registrySource adapts the registry to gateway.InstanceSource.
type registrySource struct{ r *registry.Registry }

func (rs registrySource) WatchInstances(service string, update func([]upstream.InstanceSpec)) func() {
	return rs.r.Watch(service, func(set registry.Set) {
		specs := make([]upstream.InstanceSpec, len(set.Instances))
		for i, in := range set.Instances {
			specs[i] = upstream.InstanceSpec{URL: in.Scheme + "://" + in.ID, Weight: in.Weight}
		}
		update(specs)
	})
}

// startBackground runs the registry's expiry and the key ring's refresh
// until stopBackground.
func (s *Server) startBackground(ctx context.Context) {
	st := s.state
	ctx, st.stop = context.WithCancel(context.WithoutCancel(ctx))
	st.bg.Go(func() { st.registry.Run(ctx) })
	st.bg.Go(func() { st.keys.Run(ctx) })
	if stats := s.gw.Runtime().Stats; stats != nil {
		u := newUpstreamHoursSync(st.store, stats, s.logger)
		st.bg.Go(func() { u.run(ctx) })
	}
}

// Close stops the background work and closes the store. Serve calls it
// after draining; call it yourself when Serve is never called. It is
// safe to call more than once.
func (s *Server) Close() error {
	st := s.state
	if st == nil {
		return nil
	}
	var err error
	st.closeOne.Do(func() {
		if st.stop != nil {
			st.stop()
		}
		st.bg.Wait()
		if st.anomalies != nil {
			st.anomalies.Close() // writes what is queued to the store first
		}
		err = st.store.Close()
		if st.redisLimits != nil {
			st.redisLimits.Close() // its probe, before the client it uses
		}
		if st.redis != nil {
			err = errors.Join(err, st.redis.Close())
		}
	})
	return err
}

// Registry returns the service registry.
func (s *Server) Registry() *registry.Registry { return s.state.registry }

// recordLoad audits a configuration load and, when it succeeded, records
// the revision and applies the parts of it the state components use.
func (s *Server) recordLoad(ctx context.Context, cause, actor string, old, snap *gateway.Snapshot, diags config.Diagnostics) {
	st := s.state
	if st == nil {
		return
	}
	e := audit.Entry{Actor: actor, Action: audit.ActionConfigReload, Target: "config",
		Before: map[string]string{"version": versionOf(old)}, Detail: cause}
	if diags != nil {
		e.Outcome = store.OutcomeFailure
		e.Detail = fmt.Sprintf("%s: refused with %d problems; the running configuration keeps serving", cause, len(diags))
		st.audit.Record(ctx, e)
		return
	}
	e.After = map[string]string{"version": snap.Version}
	st.audit.Record(ctx, e)
	if _, err := st.store.AddConfigRevision(context.WithoutCancel(ctx), store.ConfigRevision{Version: snap.Version, Time: snap.Loaded, Source: cause, Actor: actor, Text: string(snap.Doc.Source)}); err != nil {
		s.logger.Error("recording the configuration revision failed", "error", err)
	}
	if p, err := registry.PolicyFromConfig(snap.Doc.Config.Registry); err == nil {
		st.registry.SetPolicy(p)
	}
	if dir := snap.Doc.Config.Storage.EffectiveDataDir(); s.opts.DataDir == "" && dir != st.dataDir {
		s.logger.Warn("a change to storage.data_dir takes effect at the next restart", "using", st.dataDir)
	}
	if !reflect.DeepEqual(snap.Doc.Config.Storage.Postgres, st.postgres) {
		s.logger.Warn("a change to storage.postgres takes effect at the next restart; the store opened at start stays in use")
	}
	if !reflect.DeepEqual(snap.Doc.Config.Storage.Redis, st.redisCfg) {
		s.logger.Warn("a change to storage.redis takes effect at the next restart; the rate limits keep the buckets they use")
	}
	if n := snap.Doc.Config.Anomalies.MaxCallers; n != st.maxCallers {
		s.logger.Warn("a change to anomalies.max_callers takes effect at the next restart", "using", st.maxCallers)
	}
	if want := snap.BackendKeyDirPending(); want != "" {
		s.logger.Warn("a change of the backend signing keys' directory (backend_identity.key_dir, or storage.data_dir) takes effect at the next restart; the keys in service stay", "configured", want)
	}
}

// AdminAPI returns the admin API over the server's state (one per server).
func (s *Server) AdminAPI() *admin.API {
	s.apiOnce.Do(func() { s.api = s.newAdminAPI() })
	return s.api
}

func (s *Server) adminAPI() *admin.API { return s.AdminAPI() }

func (s *Server) newAdminAPI() *admin.API {
	return admin.NewAPI(admin.APIOptions{
		Logger:    s.logger,
		Snapshot:  s.gw.Snapshot,
		Registry:  s.state.registry,
		Store:     s.state.store,
		Keys:      s.state.keys,
		Audit:     s.state.audit,
		Reload:    s.ReloadAs,
		Stats:     s.statsHandler(),
		Anomalies: s.state.anomalies,
	})
}

// adminTLSConfig serves the admin certificate and client CAs of the
// current snapshot.
func (s *Server) adminTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			acc := s.gw.Snapshot().Admin()
			if acc == nil || acc.Certificate == nil {
				return nil, errors.New("the admin listener has no certificate")
			}
			c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*acc.Certificate}}
			if acc.ClientCAs != nil {
				c.ClientAuth, c.ClientCAs = tls.VerifyClientCertIfGiven, acc.ClientCAs
			}
			return c, nil
		},
	}
}

// quotaStore adapts the store's quota counters to the quota registry.
type quotaStore struct{ s store.QuotaCounters }

// quotaTimeout bounds one load or save of the quota counters.
const quotaTimeout = 30 * time.Second

func (q quotaStore) Load() ([]quota.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), quotaTimeout)
	defer cancel()
	cs, err := q.s.LoadQuotaCounters(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]quota.Record, len(cs))
	for i, c := range cs {
		out[i] = quota.Record{API: c.API, Operation: c.Operation, Name: c.Name, KeySpec: c.KeySpec, Key: c.Key, Start: c.Start.Unix(), Count: c.Count}
	}
	return out, nil
}

func (q quotaStore) Save(records []quota.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), quotaTimeout)
	defer cancel()
	cs := make([]store.QuotaCounter, len(records))
	for i, r := range records {
		cs[i] = store.QuotaCounter{API: r.API, Operation: r.Operation, Name: r.Name, KeySpec: r.KeySpec, Key: r.Key, Start: time.Unix(r.Start, 0).UTC(), Count: r.Count}
	}
	return q.s.ReplaceQuotaCounters(ctx, cs)
}

// Add implements quota.SharedStore.
func (q quotaStore) Add(deltas []quota.Record) ([]quota.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), quotaTimeout)
	defer cancel()
	cs := make([]store.QuotaCounter, len(deltas))
	for i, r := range deltas {
		cs[i] = store.QuotaCounter{API: r.API, Operation: r.Operation, Name: r.Name, KeySpec: r.KeySpec, Key: r.Key, Start: time.Unix(r.Start, 0).UTC(), Count: r.Count}
	}
	got, err := q.s.AddQuotaCounts(ctx, cs)
	if err != nil {
		return nil, err
	}
	out := make([]quota.Record, len(got))
	for i, c := range got {
		out[i] = quota.Record{API: c.API, Operation: c.Operation, Name: c.Name, KeySpec: c.KeySpec, Key: c.Key, Start: c.Start.Unix(), Count: c.Count}
	}
	return out, nil
}

// Prune implements quota.SharedStore.
func (q quotaStore) Prune(before int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), quotaTimeout)
	defer cancel()
	_, err := q.s.DeleteQuotaCountersBefore(ctx, time.Unix(before, 0).UTC())
	return err
}

// openStore opens the configured store: PostgreSQL when storage.postgres
// is set (shared says so), the embedded SQLite store in dir otherwise.
func (s *Server) openStore(ctx context.Context, doc *config.Document, dir string) (st store.Store, shared bool, err error) {
	pg := doc.Config.Storage.Postgres
	if pg == nil {
		st, err := sqlite.Open(ctx, dir, sqlite.Options{})
		return st, false, err
	}
	o := postgres.Options{URL: pg.URL, Schema: pg.EffectiveSchema()}
	if !pg.Password.IsZero() {
		v, err := s.opts.Secrets.Resolve(ctx, pg.Password)
		if err != nil {
			return nil, false, fmt.Errorf("storage.postgres.password: %w", err)
		}
		o.Password = v.Reveal()
	}
	p, err := postgres.Open(ctx, o)
	if err != nil {
		return nil, false, fmt.Errorf("storage.postgres: %w", err)
	}
	s.logger.Info("store opened; run-time state is shared with the gateways that use it", "store", p.Describe())
	return p, true, nil
}
