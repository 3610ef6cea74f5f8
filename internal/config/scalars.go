package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a length of time written with a unit: 250ms, 30s, 5m, 1h30m,
// or days as 2d. A bare number is refused: its unit would be a guess.
type Duration struct {
	time.Duration
	Set bool // written in the file (so an explicit 0 differs from absent)
}

// Or returns the duration, or def when it was not written.
func (d Duration) Or(def time.Duration) time.Duration {
	if !d.Set {
		return def
	}
	return d.Duration
}

func (d *Duration) decodeNode(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	d.Duration, d.Set = v, true
	return nil
}

// ParseDuration parses a duration with units, allowing a leading count of
// days ("2d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errEmpty
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil && s != "0" {
		return 0, fmt.Errorf("duration %q needs a unit, e.g. %ss", s, s)
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use a number with a unit (ms, s, m, h, d)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return days + v, nil
}

// Size is a number of bytes, written with an optional unit: 512, 64KiB,
// 10MiB, 1GiB (binary) or 1KB, 1MB, 1GB (decimal).
type Size struct {
	Bytes int64
	Set   bool
}

// Or returns the size, or def when it was not written.
func (s Size) Or(def int64) int64 {
	if !s.Set {
		return def
	}
	return s.Bytes
}

func (s *Size) decodeNode(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	s.Bytes, s.Set = v, true
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize parses a byte count with an optional unit.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errEmpty
	}
	mult := int64(1)
	num := s
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: use a whole number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// Secret is a reference to a secret value, never the value itself:
// ${env:NAME} reads an environment variable, ${vault:mount/data/path#field}
// a field of a Vault KV v2 secret, ${file:PATH} a file (trailing
// newline removed). Inline values are refused, so that a configuration
// file can be committed to git.
type Secret struct {
	Provider string // env or file
	Ref      string // the variable name or file path
}

// IsZero reports whether no reference was written.
func (s Secret) IsZero() bool { return s.Provider == "" }

// String shows the reference, never a value.
func (s Secret) String() string {
	if s.IsZero() {
		return ""
	}
	return "${" + s.Provider + ":" + s.Ref + "}"
}

// LogValue shows the reference only.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// SecretProviders are the reference kinds a Secret accepts.
var SecretProviders = []string{"env", "file", "vault"}

func (s *Secret) decodeNode(n *yaml.Node) error {
	v, err := ParseSecret(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSecret parses a ${provider:ref} reference.
func ParseSecret(v string) (Secret, error) {
	inner, ok := strings.CutPrefix(v, "${")
	if ok {
		inner, ok = strings.CutSuffix(inner, "}")
	}
	if !ok {
		// Never echo the value: it may be the secret itself.
		return Secret{}, fmt.Errorf("inline secret values are not accepted; write a reference such as ${env:NAME} or ${file:/path}")
	}
	provider, ref, ok := strings.Cut(inner, ":")
	if !ok || ref == "" {
		return Secret{}, fmt.Errorf("secret reference needs the form ${provider:reference}")
	}
	for _, p := range SecretProviders {
		if p == provider {
			if p == "vault" {
				if _, _, err := ParseVaultRef(ref); err != nil {
					return Secret{}, err
				}
			}
			return Secret{Provider: provider, Ref: ref}, nil
		}
	}
	return Secret{}, fmt.Errorf("unknown secret provider %q (known: %s)", provider, strings.Join(SecretProviders, ", "))
}
