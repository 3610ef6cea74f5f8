package identity

import (
	"log/slog"
	"time"
)

// NewKeySetsWithClock is NewKeySets with the clock that governs the
// cooldown replaced, so tests never wait for it.
func NewKeySetsWithClock(logger *slog.Logger, hooks Hooks, now func() time.Time) *KeySets {
	r := NewKeySets(logger, hooks)
	r.now = now
	return r
}

// ParseJWKS exposes the JWKS parser to the fuzz target: it returns the
// number of usable keys and of skipped ones.
func ParseJWKS(data []byte) (usable, skipped int, err error) {
	m, s, err := parseJWKS(data)
	if m != nil {
		usable = len(m.all)
	}
	return usable, len(s), err
}
