package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Limits of a consumer's attributes.
const (
	maxAttrs   = 64
	maxAttrLen = 256
)

type newConsumerBody struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	Roles  []string `json:"roles"`
	Scopes []string `json:"scopes"`
	// Keys are the slots to make keys in; default ["primary"].
	Keys []string `json:"keys"`
}

type keyView struct {
	Slot    string `json:"slot"`
	KeyID   string `json:"key_id"`
	Created string `json:"created"`
}

type consumerView struct {
	store.Consumer
	Keys []keyView `json:"keys"`
}

// keyID names a key without revealing it: the first 12 hex digits of its
// hash.
func keyID(h [32]byte) string { return identity.KeyHash(h).String()[:12] }

func (a *API) consumerView(c *call, cons store.Consumer) (consumerView, error) {
	keys, err := a.o.Store.ListKeys(c.ctx, cons.Name)
	if err != nil {
		return consumerView{}, err
	}
	v := consumerView{Consumer: cons, Keys: []keyView{}}
	for _, k := range keys {
		v.Keys = append(v.Keys, keyView{Slot: k.Slot, KeyID: keyID(k.Hash), Created: k.Created.UTC().Format("2006-01-02T15:04:05Z")})
	}
	return v, nil
}

func (a *API) listConsumers(c *call) error {
	list, err := a.o.Store.ListConsumers(c.ctx)
	if err != nil {
		return err
	}
	out := []consumerView{}
	for _, cons := range list {
		v, err := a.consumerView(c, cons)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return c.reply(map[string]any{"consumers": out})
}

func (a *API) getConsumer(c *call) error {
	cons, err := a.o.Store.GetConsumer(c.ctx, c.r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		return notFound("No consumer %q in the store.", c.r.PathValue("name"))
	}
	if err != nil {
		return err
	}
	v, err := a.consumerView(c, cons)
	if err != nil {
		return err
	}
	return c.reply(v)
}

func checkAttrs(field string, vs []string) error {
	if len(vs) > maxAttrs {
		return badRequest("%s: at most %d values", field, maxAttrs)
	}
	for _, v := range vs {
		if v == "" || len(v) > maxAttrLen {
			return badRequest("%s: each value must be 1 to %d characters", field, maxAttrLen)
		}
		for _, r := range v {
			if r < 0x21 || r == 0x7f || r == ',' {
				return badRequest("%s: values must be printable, without spaces or commas", field)
			}
		}
	}
	return nil
}

func validSlot(s string) bool { return s == store.SlotPrimary || s == store.SlotSecondary }

func (a *API) createConsumer(c *call) error {
	var b newConsumerBody
	if err := c.decode(&b); err != nil {
		return err
	}
	cons, keys, err := a.CreateConsumer(c.ctx, c.actor, NewConsumer{Name: b.Name, Groups: b.Groups, Roles: b.Roles, Scopes: b.Scopes, Keys: b.Keys})
	if err != nil {
		return err
	}
	v, err := a.consumerView(c, cons)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", "/v1/consumers/"+cons.Name)
	return c.reply(map[string]any{"consumer": v, "keys": keys,
		"note": "The keys are shown this once; only their hashes are stored."})
}

// NewConsumer is a consumer to create in the store.
type NewConsumer struct {
	Name                  string
	Groups, Roles, Scopes []string
	// Keys are the slots to make keys in; default primary only.
	Keys []string
}

// CreateConsumer makes a consumer in the store with keys in the given
// slots, audits it on behalf of actor, and returns the new keys by slot:
// they are shown this once. The admin API and the dashboard both use it.
func (a *API) CreateConsumer(ctx context.Context, actor string, nc NewConsumer) (store.Consumer, map[string]string, error) {
	if !config.ValidName(nc.Name) {
		return store.Consumer{}, nil, badRequest("name must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
	}
	if snap := a.o.Snapshot(); snap != nil {
		for _, cc := range snap.Doc.Config.Consumers {
			if cc.Name == nc.Name {
				return store.Consumer{}, nil, conflict("Consumer %q is defined in the configuration file; manage it there.", nc.Name)
			}
		}
	}
	for _, f := range []struct {
		name string
		vs   []string
	}{{"groups", nc.Groups}, {"roles", nc.Roles}, {"scopes", nc.Scopes}} {
		if err := checkAttrs(f.name, f.vs); err != nil {
			return store.Consumer{}, nil, err
		}
	}
	slots := slices.Clone(nc.Keys)
	if slots == nil {
		slots = []string{store.SlotPrimary}
	}
	slices.Sort(slots)
	slots = slices.Compact(slots)
	for _, s := range slots {
		if !validSlot(s) {
			return store.Consumer{}, nil, badRequest("keys: %q is not a slot (primary, secondary)", s)
		}
	}
	now := a.o.Now()
	cons := store.Consumer{Name: nc.Name, Groups: nonNil(nc.Groups), Roles: nonNil(nc.Roles), Scopes: nonNil(nc.Scopes), Created: now, Updated: now}
	if err := a.o.Store.CreateConsumer(ctx, cons); errors.Is(err, store.ErrConflict) {
		return store.Consumer{}, nil, conflict("Consumer %q already exists.", nc.Name)
	} else if err != nil {
		return store.Consumer{}, nil, err
	}
	keys := map[string]string{}
	ids := map[string]string{}
	for _, slot := range slots {
		key, h, err := a.putNewKey(ctx, nc.Name, slot)
		if err != nil {
			// Take the consumer back (its keys with it): nobody has seen
			// its keys, and a retry must not find it already there.
			if derr := a.o.Store.DeleteConsumer(context.WithoutCancel(ctx), nc.Name); derr != nil && !errors.Is(derr, store.ErrNotFound) {
				a.o.Logger.Error("removing a consumer whose keys could not be saved", "consumer", nc.Name, "error", derr)
			}
			return store.Consumer{}, nil, err
		}
		keys[slot], ids[slot] = key, keyID(h)
	}
	entries := []audit.Entry{{Actor: actor, Action: audit.ActionConsumerCreate, Target: "consumers/" + nc.Name,
		After: map[string]any{"groups": cons.Groups, "roles": cons.Roles, "scopes": cons.Scopes, "key_ids": ids}}}
	for _, slot := range slots {
		entries = append(entries, audit.Entry{Actor: actor, Action: audit.ActionKeyCreate, Target: "consumers/" + nc.Name + "/keys/" + slot,
			After: map[string]string{"key_id": ids[slot]}})
	}
	if err := a.saved(ctx, entries...); err != nil {
		return store.Consumer{}, nil, err
	}
	return cons, keys, nil
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// putNewKey generates a key, stores its hash in the slot and returns it.
func (a *API) putNewKey(ctx context.Context, consumer, slot string) (string, [32]byte, error) {
	key, err := identity.GenerateKey()
	if err != nil {
		return "", [32]byte{}, err
	}
	h := identity.HashKey(key)
	err = a.o.Store.PutKey(ctx, store.Key{Consumer: consumer, Slot: slot, Hash: h, Created: a.o.Now()})
	if errors.Is(err, store.ErrNotFound) {
		return "", h, notFound("No consumer %q in the store.", consumer)
	}
	return key, h, err
}

func (a *API) slotParams(c *call) (string, string, error) {
	name, slot := c.r.PathValue("name"), c.r.PathValue("slot")
	if !validSlot(slot) {
		return "", "", notFound("%q is not a key slot (primary, secondary).", slot)
	}
	return name, slot, nil
}

func (a *API) currentKeyID(ctx context.Context, name, slot string) (string, error) {
	keys, err := a.o.Store.ListKeys(ctx, name)
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if k.Slot == slot {
			return keyID(k.Hash), nil
		}
	}
	return "", nil
}

// rotateKey puts a new key in a slot. The other slot is untouched, so
// clients using it keep working while this one is handed out.
func (a *API) rotateKey(c *call) error {
	name, slot, err := a.slotParams(c)
	if err != nil {
		return err
	}
	key, id, err := a.RotateKey(c.ctx, c.actor, name, slot)
	if err != nil {
		return err
	}
	return c.reply(map[string]any{"consumer": name, "slot": slot, "key": key, "key_id": id,
		"note": "The key is shown this once; only its hash is stored."})
}

// RotateKey puts a new key in a consumer's slot, on behalf of actor, and
// returns it (shown this once) with its key ID. The other slot is
// untouched.
func (a *API) RotateKey(ctx context.Context, actor, name, slot string) (key, id string, err error) {
	if !validSlot(slot) {
		return "", "", notFound("%q is not a key slot (primary, secondary).", slot)
	}
	before, err := a.currentKeyID(ctx, name, slot)
	if err != nil {
		return "", "", err
	}
	key, h, err := a.putNewKey(ctx, name, slot)
	if err != nil {
		return "", "", err
	}
	e := audit.Entry{Actor: actor, Action: audit.ActionKeyCreate, Target: "consumers/" + name + "/keys/" + slot,
		After: map[string]string{"key_id": keyID(h)}}
	if before != "" {
		e.Action, e.Before = audit.ActionKeyRotate, map[string]string{"key_id": before}
	}
	if err := a.saved(ctx, e); err != nil {
		return "", "", err
	}
	return key, keyID(h), nil
}

func (a *API) revokeKey(c *call) error {
	name, slot, err := a.slotParams(c)
	if err != nil {
		return err
	}
	if err := a.RevokeKey(c.ctx, c.actor, name, slot); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// RevokeKey removes the key in a consumer's slot on behalf of actor; the
// next request with it is refused.
func (a *API) RevokeKey(ctx context.Context, actor, name, slot string) error {
	if !validSlot(slot) {
		return notFound("%q is not a key slot (primary, secondary).", slot)
	}
	before, err := a.currentKeyID(ctx, name, slot)
	if err != nil {
		return err
	}
	if err := a.o.Store.DeleteKey(ctx, name, slot); errors.Is(err, store.ErrNotFound) {
		return notFound("Consumer %q has no %s key.", name, slot)
	} else if err != nil {
		return err
	}
	return a.saved(ctx, audit.Entry{Actor: actor, Action: audit.ActionKeyRevoke, Target: "consumers/" + name + "/keys/" + slot,
		Before: map[string]string{"key_id": before}})
}

// saved records a change the store has committed and makes the gateway's
// key table follow it at once (it would at its next poll). The record is
// written first, and the refresh does not depend on the request's
// context: a client that hangs up once the change is committed must not
// leave it unaudited, nor a revoked key accepted until the next poll.
func (a *API) saved(ctx context.Context, entries ...audit.Entry) error {
	for _, e := range entries {
		a.o.Audit.Record(ctx, e)
	}
	if err := a.o.Keys.Refresh(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("the change is saved, but the gateway's key table was not refreshed (its next poll will): %w", err)
	}
	return nil
}

// ErrorDetail returns what an error from CreateConsumer, RotateKey or
// RevokeKey says to the person who caused it, and whether it is their
// mistake (bad input, conflict) or a missing thing (not found).
func ErrorDetail(err error) (detail string, notFound, userError bool) {
	var ae *apiError
	if !errors.As(err, &ae) {
		return "", false, false
	}
	return ae.detail, ae.status == http.StatusNotFound, ae.status < 500
}

func (a *API) deleteConsumer(c *call) error {
	name := c.r.PathValue("name")
	cons, err := a.o.Store.GetConsumer(c.ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("No consumer %q in the store.", name)
	}
	if err != nil {
		return err
	}
	v, err := a.consumerView(c, cons)
	if err != nil {
		return err
	}
	if err := a.o.Store.DeleteConsumer(c.ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := a.saved(c.ctx, audit.Entry{Actor: c.actor, Action: audit.ActionConsumerDelete, Target: "consumers/" + name, Before: v,
		Detail: fmt.Sprintf("%d keys revoked", len(v.Keys))}); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
