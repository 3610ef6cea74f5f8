package identity_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func TestHashKeyRoundTrip(t *testing.T) {
	h := identity.HashKey("ghk_example")
	s := h.String()
	// printf ghk_example | sha256sum
	if s != "3775f313836eeeec45ae4e907c5420b79c5ec3a49c425395f1d922b552e00c00" {
		t.Fatalf("String() = %q", s)
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		got, err := identity.ParseKeyHash(in)
		if err != nil || got != h {
			t.Fatalf("ParseKeyHash(%q) = %v, %v", in, got, err)
		}
	}
}

func TestParseKeyHash_Errors(t *testing.T) {
	good := identity.HashKey("k").String()
	cases := map[string]string{
		"":                          "got 0 characters",
		good[:63]:                   "got 63 characters",
		good + "0":                  "got 65 characters",
		"g" + good[1:]:              "character 1 ",
		good[:10] + "-" + good[11:]: "character 11 ",
		" " + good[1:]:              "character 1 ",
	}
	for in, want := range cases {
		_, err := identity.ParseKeyHash(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKeyHash(%q) error %v, want it to say %q", in, err, want)
		}
	}
}

func TestGenerateKey(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		k, err := identity.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k, "ghk_") || len(k) != 4+43 || strings.ContainsAny(k, "+/=") {
			t.Fatalf("key %q", k)
		}
		if seen[k] {
			t.Fatal("a key repeated")
		}
		seen[k] = true
	}
}

func TestKeyTable(t *testing.T) {
	primary, _ := identity.GenerateKey()
	secondary, _ := identity.GenerateKey()
	other, _ := identity.GenerateKey()
	alice := identity.NewStaticPrincipal(identity.CredentialAPIKey, "alice", "alice", nil, nil, []string{"s"})
	bob := identity.NewStaticPrincipal(identity.CredentialAPIKey, "bob", "bob", nil, nil, nil)
	tab := identity.NewKeyTable()
	for _, add := range []struct {
		key string
		p   *identity.Principal
	}{{primary, alice}, {secondary, alice}, {other, bob}} {
		if err := tab.Add(identity.HashKey(add.key), add.p); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.Add(identity.HashKey(primary), bob); err == nil {
		t.Fatal("a duplicate hash was accepted")
	} else if strings.Contains(err.Error(), primary) {
		t.Fatal("the error contains the key")
	}
	for key, want := range map[string]*identity.Principal{primary: alice, secondary: alice, other: bob} {
		if p, ok := tab.Lookup(key); !ok || p != want {
			t.Errorf("Lookup: %v %v", p, ok)
		}
	}
	for _, key := range []string{"", "ghk_nope", primary[:len(primary)-1], primary + "x", strings.Repeat("a", 513)} {
		if p, ok := tab.Lookup(key); ok || p != nil {
			t.Errorf("Lookup(%.20q) found %v", key, p)
		}
	}
	if tab.Len() != 3 {
		t.Fatalf("Len %d", tab.Len())
	}
}

func TestKeyTable_LongKeyIsNotHashed(t *testing.T) {
	long := strings.Repeat("k", 513)
	tab := identity.NewKeyTable()
	if err := tab.Add(identity.HashKey(long), identity.NewStaticPrincipal(identity.CredentialAPIKey, "x", "x", nil, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if _, ok := tab.Lookup(long); ok {
		t.Fatal("a key over 512 bytes was looked up")
	}
}
