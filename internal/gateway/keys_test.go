package gateway

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// The configuration file owns its consumers' names: a store consumer of
// the same name (made before the file named it) authenticates no one,
// so that two identities never share one name; the store's other
// consumers and the file's keys work as before.
func TestCombinedKeys_TheFileOwnsItsConsumersNames(t *testing.T) {
	static, dynamic := identity.NewKeyTable(), identity.NewKeyTable()
	fileKey, shadowed, other := "ghk_file", "ghk_store_same_name", "ghk_store_other"
	static.Add(identity.HashKey(fileKey), identity.NewStaticPrincipal(identity.CredentialAPIKey, "late", "late", []string{"other"}, nil, nil))
	dynamic.Add(identity.HashKey(shadowed), identity.NewStaticPrincipal(identity.CredentialAPIKey, "late", "late", []string{"integrations"}, nil, nil))
	dynamic.Add(identity.HashKey(other), identity.NewStaticPrincipal(identity.CredentialAPIKey, "billing", "billing", nil, nil, nil))
	k := &combinedKeys{static: static, dynamic: dynamic, fileNames: map[string]bool{"late": true}}
	if p, ok := k.Lookup(fileKey); !ok || p.Groups[0] != "other" {
		t.Fatalf("the file's key: %v %v", p, ok)
	}
	if p, ok := k.Lookup(shadowed); ok {
		t.Fatalf("a store key of a consumer the file names authenticated %+v", p)
	}
	if p, ok := k.Lookup(other); !ok || p.Consumer != "billing" {
		t.Fatalf("another store consumer: %v %v", p, ok)
	}
}
