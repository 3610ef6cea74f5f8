package server

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
)

// watchDebounce gathers the several events an editor or a deployment
// tool makes when it replaces a file into one reload.
const watchDebounce = 300 * time.Millisecond

// The watchers' constructors; tests make them fail.
var (
	newConfigWatcher  = fsnotify.NewWatcher
	newSecretsWatcher = fsnotify.NewWatcher
)

// WatchSecrets is Watch without the configuration file's watch: it
// reloads when a secret file the configuration refers to changes, and
// every secrets.vault.refresh_interval, until ctx is done (`gatehouse
// serve --watch=false`).
func (s *Server) WatchSecrets(ctx context.Context) { s.watchSecrets(ctx) }

// Watch reloads the configuration when its file changes, until ctx is
// done. It watches the file's directory, so that files replaced by rename
// (editors, Kubernetes ConfigMap symlink swaps) are seen too.
// Referenced secret files are watched too (watch_secrets.go), and go on
// being watched when the configuration file cannot be (the error is
// logged, and Watch returns nil when ctx is done).
func (s *Server) Watch(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.watchSecrets(ctx) })
	defer wg.Wait()
	defer cancel()
	if s.opts.ConfigFile == "" {
		<-ctx.Done()
		return nil
	}
	w, base, err := s.configWatcher()
	if err != nil {
		s.logger.Warn("not watching the configuration file (a reload needs SIGHUP or the admin API); secret files and Vault's refresh are still followed", "error", err)
		<-ctx.Done()
		return nil
	}
	defer w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// A change written between the first load and the watch: reload now.
	if s.configChanged() {
		timer.Reset(watchDebounce)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			name := filepath.Base(ev.Name)
			// ..data is the symlink Kubernetes swaps to update a mounted ConfigMap.
			if name == base || name == "..data" {
				timer.Reset(watchDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.logger.Warn("watching the configuration file", "error", err)
		case <-timer.C:
			_ = s.reload(ctx, "file changed", audit.ActorSystem, false)
		}
	}
}

// configChanged reports whether the configuration file, loaded now, is
// not what the running snapshot was compiled from (or no longer loads).
func (s *Server) configChanged() bool {
	old := s.gw.Snapshot()
	doc, diags := s.opts.Load()
	return diags != nil || old == nil || gateway.Version(doc.Config) != old.Version
}

// configWatcher watches the configuration file's directory; base is the
// file's name in it.
func (s *Server) configWatcher() (w *fsnotify.Watcher, base string, err error) {
	file, err := filepath.Abs(s.opts.ConfigFile)
	if err != nil {
		return nil, "", err
	}
	w, err = newConfigWatcher()
	if err != nil {
		return nil, "", err
	}
	if err := w.Add(filepath.Dir(file)); err != nil {
		w.Close()
		return nil, "", err
	}
	return w, filepath.Base(file), nil
}
