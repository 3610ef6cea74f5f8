// Package sqlite is the embedded store: one SQLite database file in the
// data directory, through modernc.org/sqlite (pure Go, no cgo). It
// implements every interface of package store.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// FileName is the database file inside the data directory.
const FileName = "gatehouse.db"

// Options tune Open.
type Options struct {
	// MustExist refuses to create a new database (and its directory):
	// for tools that read an existing store, such as 'gatehouse audit'.
	MustExist bool
}

// Store is the SQLite store. It is safe for concurrent use. Writes go
// through one connection, so that they are serialized within the process;
// reads use a small pool of their own. Other processes may read the same
// file at the same time (WAL mode).
type Store struct {
	dir    string
	path   string
	writer *sql.DB
	reader *sql.DB
}

var _ store.Store = (*Store)(nil)

// Open opens, or creates, the store in dir and brings its schema up to
// date. Every failure is an error that names the directory and what is
// wrong with it; nothing is written when the directory or the database
// cannot be used (a database written by a newer Gatehouse, a file that is
// not a database).
func Open(ctx context.Context, dir string, o Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("storage.data_dir is empty")
	}
	path := filepath.Join(dir, FileName)
	if o.MustExist {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("storage.data_dir %q holds no store (%s): %w", dir, FileName, errors.Unwrap(err))
		}
	} else if err := prepareDir(dir); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, path: path}
	var err error
	if s.writer, err = openDB(path, true); err != nil {
		return nil, fmt.Errorf("storage.data_dir %q: %w", dir, err)
	}
	s.writer.SetMaxOpenConns(1)
	if err := s.migrate(ctx); err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("storage.data_dir %q: %w", dir, err)
	}
	if s.reader, err = openDB(path, false); err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("storage.data_dir %q: %w", dir, err)
	}
	s.reader.SetMaxOpenConns(4)
	return s, nil
}

// prepareDir creates dir if needed and checks that files can be created
// in it.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("storage.data_dir %q cannot be created: %w", dir, cleanPathError(err))
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("storage.data_dir %q: %w", dir, cleanPathError(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("storage.data_dir %q is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("storage.data_dir %q is not writable: %w", dir, cleanPathError(err))
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	if st, err := os.Stat(filepath.Join(dir, FileName)); err == nil && st.IsDir() {
		return fmt.Errorf("storage.data_dir %q: %s is a directory, not a database", dir, FileName)
	}
	return nil
}

func cleanPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func openDB(path string, writer bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s cannot be opened as a database: %w", filepath.Base(path), err)
	}
	return db, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.reader.Close(), s.writer.Close())
}

// Path returns the database file.
func (s *Store) Path() string { return s.path }

// tx runs fn in a write transaction.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
