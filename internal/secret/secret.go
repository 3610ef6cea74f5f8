// Package secret resolves secret references from the configuration
// (${env:NAME}, ${file:PATH}, and ${vault:mount/data/path#field} from a
// Vault-compatible KV v2 store) into values. Values are held in a Value,
// which never prints its content.
package secret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// Value is a resolved secret. Its String and LogValue never show the
// content; call Reveal where the value is really needed.
type Value struct{ v string }

// NewValue wraps s.
func NewValue(s string) Value { return Value{v: s} }

// Reveal returns the secret itself.
func (v Value) Reveal() string { return v.v }

// String hides the value.
func (v Value) String() string { return "REDACTED" }

// LogValue hides the value.
func (v Value) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// GoString hides the value (%#v).
func (v Value) GoString() string { return "secret.Value(REDACTED)" }

// Format hides the value whatever the verb (%x and %q included).
func (v Value) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, v.GoString())
		return
	}
	_, _ = io.WriteString(f, "REDACTED")
}

// MarshalText hides the value (JSON, YAML and other encoders).
func (v Value) MarshalText() ([]byte, error) { return []byte("REDACTED"), nil }

// Resolver resolves secret references.
type Resolver interface {
	Resolve(ctx context.Context, ref config.Secret) (Value, error)
}

// Env and file resolution, with the environment injectable for tests.
type Local struct {
	// Getenv defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// MaxFileSize bounds a secret file; default 64 KiB.
	MaxFileSize int64
}

// ErrNotFound is returned for a reference that names nothing.
var ErrNotFound = errors.New("secret not found")

// Resolve implements Resolver. Errors name the reference, never a value.
func (l Local) Resolve(_ context.Context, ref config.Secret) (Value, error) {
	switch ref.Provider {
	case "env":
		lookup := l.LookupEnv
		if lookup == nil {
			lookup = os.LookupEnv
		}
		v, ok := lookup(ref.Ref)
		if !ok {
			return Value{}, fmt.Errorf("%s: environment variable %s is not set: %w", ref, ref.Ref, ErrNotFound)
		}
		if v == "" {
			return Value{}, fmt.Errorf("%s: environment variable %s is empty", ref, ref.Ref)
		}
		return Value{v: v}, nil
	case "file":
		limit := l.MaxFileSize
		if limit <= 0 {
			limit = 64 << 10
		}
		f, err := os.Open(ref.Ref)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return Value{}, fmt.Errorf("%s: file does not exist: %w", ref, ErrNotFound)
			}
			return Value{}, fmt.Errorf("%s: %w", ref, errors.Unwrap(err))
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, limit+1))
		if err != nil {
			return Value{}, fmt.Errorf("%s: reading: %w", ref, errors.Unwrap(err))
		}
		if int64(len(data)) > limit {
			return Value{}, fmt.Errorf("%s: file is larger than %d bytes", ref, limit)
		}
		v := strings.TrimRight(string(data), "\r\n")
		if v == "" {
			return Value{}, fmt.Errorf("%s: file is empty", ref)
		}
		return Value{v: v}, nil
	default:
		return Value{}, fmt.Errorf("%s: unknown secret provider %q", ref, ref.Provider)
	}
}
