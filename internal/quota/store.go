package quota

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Record is one persisted counter.
type Record struct {
	API       string `json:"api"`
	Operation string `json:"operation,omitempty"`
	Name      string `json:"name"`
	KeySpec   string `json:"key_spec"`
	Key       string `json:"key"`
	// Start is the unix time (seconds) at which the counted period began.
	Start int64 `json:"start"`
	Count int64 `json:"count"`
}

// Store persists quota counters. The file store is the one implementation
// for now; the embedded database will replace it.
type Store interface {
	Load() ([]Record, error)
	Save(records []Record) error
}

// SharedStore is a store several gateways count into together (the
// PostgreSQL store that replicas share). Unlike a Store, it is never
// replaced whole: each gateway adds what it counted since its last sync,
// so that none overwrites the others' counts.
type SharedStore interface {
	// Load returns the current totals (every gateway's counts together).
	Load() ([]Record, error)
	// Add adds each record's Count (never negative) to the shared total
	// of its (API, Operation, Name, KeySpec, Key) for the period that
	// began at Start, atomically for the batch, and returns the totals
	// after it, one per record in the same order. A stored count of an
	// earlier period is replaced; a record of an earlier period than the
	// stored one is not added and the stored total (with its later Start)
	// is returned.
	Add(deltas []Record) ([]Record, error)
	// Prune removes totals of periods that began before the unix time
	// before.
	Prune(before int64) error
}

// FileStore keeps the counters in one JSON file, replaced atomically on
// every save (written to a temporary file, synced, renamed over the old one).
type FileStore struct {
	Path string
}

// FileName is the name of the quota file in the data directory.
const FileName = "quotas.json"

// NewFileStore returns a store in dir, creating dir if needed.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &FileStore{Path: filepath.Join(dir, FileName)}, nil
}

type fileFormat struct {
	Version  int      `json:"version"`
	Counters []Record `json:"counters"`
}

// Load reads the counters; a missing file is no counters.
func (s *FileStore) Load() ([]Record, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", s.Path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("%s: unknown version %d", s.Path, f.Version)
	}
	return f.Counters, nil
}

// Save replaces the file with records.
func (s *FileStore) Save(records []Record) error {
	data, err := json.Marshal(fileFormat{Version: 1, Counters: records})
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.Path)
	tmp, err := os.CreateTemp(dir, ".quotas-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.Path); err != nil {
		return err
	}
	// Make the rename itself durable.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
