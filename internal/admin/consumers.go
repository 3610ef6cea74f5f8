package admin

import (
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
	if !config.ValidName(b.Name) {
		return badRequest("name must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
	}
	for _, cc := range c.snap.Doc.Config.Consumers {
		if cc.Name == b.Name {
			return conflict("Consumer %q is defined in the configuration file; manage it there.", b.Name)
		}
	}
	for _, f := range []struct {
		name string
		vs   []string
	}{{"groups", b.Groups}, {"roles", b.Roles}, {"scopes", b.Scopes}} {
		if err := checkAttrs(f.name, f.vs); err != nil {
			return err
		}
	}
	if b.Keys == nil {
		b.Keys = []string{store.SlotPrimary}
	}
	slices.Sort(b.Keys)
	b.Keys = slices.Compact(b.Keys)
	for _, s := range b.Keys {
		if !validSlot(s) {
			return badRequest("keys: %q is not a slot (primary, secondary)", s)
		}
	}
	now := a.o.Now()
	cons := store.Consumer{Name: b.Name, Groups: nonNil(b.Groups), Roles: nonNil(b.Roles), Scopes: nonNil(b.Scopes), Created: now, Updated: now}
	if err := a.o.Store.CreateConsumer(c.ctx, cons); errors.Is(err, store.ErrConflict) {
		return conflict("Consumer %q already exists.", b.Name)
	} else if err != nil {
		return err
	}
	keys := map[string]string{}
	ids := map[string]string{}
	for _, slot := range b.Keys {
		key, h, err := a.putNewKey(c, b.Name, slot)
		if err != nil {
			return err
		}
		keys[slot], ids[slot] = key, keyID(h)
	}
	if err := a.o.Keys.Refresh(c.ctx); err != nil {
		return err
	}
	a.o.Audit.Record(c.ctx, audit.Entry{Actor: c.actor, Action: audit.ActionConsumerCreate, Target: "consumers/" + b.Name,
		After: map[string]any{"groups": cons.Groups, "roles": cons.Roles, "scopes": cons.Scopes, "key_ids": ids}})
	for _, slot := range b.Keys {
		a.o.Audit.Record(c.ctx, audit.Entry{Actor: c.actor, Action: audit.ActionKeyCreate, Target: "consumers/" + b.Name + "/keys/" + slot,
			After: map[string]string{"key_id": ids[slot]}})
	}
	v, err := a.consumerView(c, cons)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", "/v1/consumers/"+b.Name)
	return c.reply(map[string]any{"consumer": v, "keys": keys,
		"note": "The keys are shown this once; only their hashes are stored."})
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// putNewKey generates a key, stores its hash in the slot and returns it.
func (a *API) putNewKey(c *call, consumer, slot string) (string, [32]byte, error) {
	key, err := identity.GenerateKey()
	if err != nil {
		return "", [32]byte{}, err
	}
	h := identity.HashKey(key)
	err = a.o.Store.PutKey(c.ctx, store.Key{Consumer: consumer, Slot: slot, Hash: h, Created: a.o.Now()})
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

func (a *API) currentKeyID(c *call, name, slot string) (string, error) {
	keys, err := a.o.Store.ListKeys(c.ctx, name)
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
	before, err := a.currentKeyID(c, name, slot)
	if err != nil {
		return err
	}
	key, h, err := a.putNewKey(c, name, slot)
	if err != nil {
		return err
	}
	if err := a.o.Keys.Refresh(c.ctx); err != nil {
		return err
	}
	e := audit.Entry{Actor: c.actor, Action: audit.ActionKeyCreate, Target: "consumers/" + name + "/keys/" + slot,
		After: map[string]string{"key_id": keyID(h)}}
	if before != "" {
		e.Action, e.Before = audit.ActionKeyRotate, map[string]string{"key_id": before}
	}
	a.o.Audit.Record(c.ctx, e)
	return c.reply(map[string]any{"consumer": name, "slot": slot, "key": key, "key_id": keyID(h),
		"note": "The key is shown this once; only its hash is stored."})
}

func (a *API) revokeKey(c *call) error {
	name, slot, err := a.slotParams(c)
	if err != nil {
		return err
	}
	before, err := a.currentKeyID(c, name, slot)
	if err != nil {
		return err
	}
	if err := a.o.Store.DeleteKey(c.ctx, name, slot); errors.Is(err, store.ErrNotFound) {
		return notFound("Consumer %q has no %s key.", name, slot)
	} else if err != nil {
		return err
	}
	if err := a.o.Keys.Refresh(c.ctx); err != nil {
		return err
	}
	a.o.Audit.Record(c.ctx, audit.Entry{Actor: c.actor, Action: audit.ActionKeyRevoke, Target: "consumers/" + name + "/keys/" + slot,
		Before: map[string]string{"key_id": before}})
	c.w.WriteHeader(http.StatusNoContent)
	return nil
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
	if err := a.o.Keys.Refresh(c.ctx); err != nil {
		return err
	}
	a.o.Audit.Record(c.ctx, audit.Entry{Actor: c.actor, Action: audit.ActionConsumerDelete, Target: "consumers/" + name, Before: v,
		Detail: fmt.Sprintf("%d keys revoked", len(v.Keys))})
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}
