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

// WatchSecrets is Watch without the configuration file's watch: it
// reloads when a secret file the configuration refers to changes, and
// every secrets.vault.refresh_interval, until ctx is done (`gatehouse
// serve --watch=false`).
func (s *Server) WatchSecrets(ctx context.Context) { s.watchSecrets(ctx) }

// Watch reloads the configuration when its file changes, until ctx is
// done. It watches the file's directory, so that files replaced by rename
// (editors, Kubernetes ConfigMap symlink swaps) are seen too.
// Referenced secret files are watched too (watch_secrets.go).
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
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	file, err := filepath.Abs(s.opts.ConfigFile)
	if err != nil {
		return err
	}
	dir := filepath.Dir(file)
	if err := w.Add(dir); err != nil {
		return err
	}
	base := filepath.Base(file)
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
