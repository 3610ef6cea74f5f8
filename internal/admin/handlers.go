package admin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/advisor"
	"github.com/gatehouse-dev/gatehouse/internal/anomaly"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/registry"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

func (a *API) whoami(c *call) error {
	return c.reply(map[string]any{"actor": c.actor, "grants": c.grants})
}

// registrationBody is the body of POST /v1/services/{service}/instances.
type registrationBody struct {
	Scheme   string            `json:"scheme"`
	Address  string            `json:"address"`
	Port     int               `json:"port"`
	Weight   int               `json:"weight"`
	Zone     string            `json:"zone"`
	Metadata map[string]string `json:"metadata"`
	TTL      string            `json:"ttl"`
}

// instanceView is an instance as the API shows it.
type instanceView struct {
	store.Instance
	TTL string `json:"ttl"`
}

func viewInstance(in store.Instance) instanceView {
	return instanceView{Instance: in, TTL: in.TTL.String()}
}

func (a *API) listServices(c *call) error {
	type svc struct {
		Service   string `json:"service"`
		Instances int    `json:"instances"`
	}
	out := []svc{}
	for _, name := range a.o.Registry.Services() {
		out = append(out, svc{Service: name, Instances: len(a.o.Registry.Current(name).Instances)})
	}
	return c.reply(map[string]any{"services": out})
}

func (a *API) listInstances(c *call) error {
	service := c.r.PathValue("service")
	out := []instanceView{}
	for _, in := range a.o.Registry.Current(service).Instances {
		out = append(out, viewInstance(in))
	}
	return c.reply(map[string]any{"service": service, "instances": out})
}

func (a *API) register(c *call) error {
	var b registrationBody
	if err := c.decode(&b); err != nil {
		return err
	}
	var ttl time.Duration
	if b.TTL != "" {
		d, err := config.ParseDuration(b.TTL)
		if err != nil {
			return badRequest("ttl: %v", err)
		}
		ttl = d
	}
	in, err := a.o.Registry.Register(c.ctx, registry.Registration{
		Service: c.r.PathValue("service"), Scheme: b.Scheme, Address: b.Address, Port: b.Port,
		Weight: b.Weight, Zone: b.Zone, Metadata: b.Metadata, TTL: ttl, Actor: c.actor,
	})
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", "/v1/services/"+in.Service+"/instances/"+in.ID)
	return c.reply(viewInstance(in))
}

func (a *API) heartbeat(c *call) error {
	in, err := a.o.Registry.Heartbeat(c.ctx, c.r.PathValue("service"), c.r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.reply(viewInstance(in))
}

func (a *API) deregister(c *call) error {
	if _, err := a.o.Registry.Deregister(c.ctx, c.r.PathValue("service"), c.r.PathValue("id"), c.actor); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listAudit(c *call) error {
	q := c.r.URL.Query()
	after, limit := int64(0), 100
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return badRequest("after must be a sequence number")
		}
		after = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit must be between 1 and 1000")
		}
		limit = n
	}
	recs, err := a.o.Store.ListAudit(c.ctx, after, limit)
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []store.AuditRecord{}
	}
	return c.reply(map[string]any{"records": recs})
}

func (a *API) listAnomalies(c *call) error {
	q := c.r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit must be between 1 and 1000")
		}
		limit = n
	}
	kind := anomaly.Kind(q.Get("kind"))
	if kind != "" && !slices.Contains(anomaly.Kinds, kind) {
		return badRequest("kind must be rate_spike, auth_failures, enumeration or first_access")
	}
	snap := a.o.Snapshot()
	out := map[string]any{
		"enabled": snap != nil && snap.AnomaliesEnabled(),
		"events":  []anomaly.Event{},
		"counts":  map[anomaly.Kind]int64{},
	}
	if d := a.o.Anomalies; d != nil {
		out["events"] = d.Recent(limit, kind)
		out["counts"] = d.Counts()
		out["callers"] = d.Callers()
		out["dropped"] = d.Dropped()
	}
	return c.reply(out)
}

func (a *API) suggestions(c *call) error {
	var o advisor.Options
	if v := c.r.URL.Query().Get("min_samples"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 1 || n > 1_000_000 {
			return badRequest("min_samples must be between 1 and 1000000")
		}
		o.MinSamples = n
	}
	return c.reply(advisor.Advise(c.snap.AdvisorInput(), o))
}

func (a *API) verifyAudit(c *call) error {
	res, err := audit.Verify(c.ctx, a.o.Store, nil)
	if err != nil {
		return err
	}
	out := map[string]any{"ok": res.Problem == nil, "records": res.Records, "head_seq": res.HeadSeq, "head_hash": res.HeadHash}
	if res.Problem != nil {
		out["first_bad_seq"] = res.Problem.Seq
		out["problem"] = res.Problem.Msg
	}
	return c.reply(out)
}

func etag(version string) string { return `"` + version + `"` }

func (a *API) configView(c *call) map[string]any {
	c.w.Header().Set("ETag", etag(c.snap.Version))
	return map[string]any{"version": c.snap.Version, "loaded": c.snap.Loaded.UTC(), "config": c.snap.Doc.Config}
}

func (a *API) getConfig(c *call) error { return c.reply(a.configView(c)) }

func (a *API) listRevisions(c *call) error {
	revs, err := a.o.Store.ListConfigRevisions(c.ctx, 100)
	if err != nil {
		return err
	}
	if revs == nil {
		revs = []store.ConfigRevision{}
	}
	return c.reply(map[string]any{"revisions": revs})
}

// reload reloads the configuration; If-Match makes it conditional on the
// version the caller saw, so two operators cannot race without noticing.
func (a *API) reload(c *call) error {
	if m := c.r.Header.Get("If-Match"); m != "" && m != "*" && m != etag(c.snap.Version) {
		c.w.Header().Set("ETag", etag(c.snap.Version))
		return &apiError{status: http.StatusPreconditionFailed, typ: "stale-version", title: "Precondition failed",
			detail: fmt.Sprintf("The configuration served is version %s, not %s; read it again.", c.snap.Version, m)}
	}
	if a.o.Reload == nil {
		return &apiError{status: http.StatusNotImplemented, typ: "not-implemented", title: "Not implemented", detail: "This gateway cannot reload its configuration."}
	}
	if err := a.o.Reload(c.ctx, "admin API", c.actor); err != nil {
		var diags config.Diagnostics
		if errors.As(err, &diags) {
			e := &apiError{status: http.StatusUnprocessableEntity, typ: "invalid-config", title: "Invalid configuration",
				detail: fmt.Sprintf("The configuration was refused (%d problems; the running one keeps serving): %s", len(diags), diags.Error())}
			return e
		}
		return err
	}
	c.snap = a.o.Snapshot()
	return c.reply(a.configView(c))
}
