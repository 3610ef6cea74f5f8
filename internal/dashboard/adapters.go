package dashboard

import (
	"context"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/gateway"
)

// SnapshotBackends lists the static instances of the configuration being
// served. It knows no health or breaker state: until the upstream health
// checks are connected, every instance shows as "unknown".
type SnapshotBackends struct {
	Snapshot func() *gateway.Snapshot
}

// Backends implements Backends.
func (b SnapshotBackends) Backends(context.Context) ([]Backend, error) {
	snap := b.Snapshot()
	if snap == nil {
		return nil, nil
	}
	var out []Backend
	for _, be := range snap.Doc.Config.Backends {
		v := Backend{Name: be.Name}
		for _, in := range be.Instances {
			v.Instances = append(v.Instances, Instance{URL: in.URL, Health: "unknown", Weight: 1, Source: "static"})
		}
		out = append(out, v)
	}
	return out, nil
}

// RecordSnapshot adds the snapshot's configuration to h (its text, or a
// note when the text is not known).
func RecordSnapshot(h *MemoryHistory, snap *gateway.Snapshot, source string) {
	text := string(snap.Doc.Source)
	if text == "" {
		text = "# the text of this version was not kept\n"
	}
	at := snap.Loaded
	if at.IsZero() {
		at = time.Now()
	}
	h.Record(snap.Version, text, source, at)
}
