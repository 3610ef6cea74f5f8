package server

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// watchSecrets reloads the configuration, resolving its secrets afresh,
// when a ${file:...} secret it uses changes, and every
// secrets.vault.refresh_interval when it uses Vault secrets. The set of
// files follows the served snapshot. It returns when ctx is done.
func (s *Server) watchSecrets(ctx context.Context) {
	// Without a watcher (out of inotify instances), Vault's refresh goes
	// on; a changed secret file then needs a reload.
	w, err := newSecretsWatcher()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if err != nil {
		s.logger.Warn("secret files are not watched (a changed one needs a reload); Vault's refresh_interval still applies", "error", err)
	} else {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	files := map[string]bool{}
	dirs := map[string]bool{}
	var refresh time.Duration
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	follow := func() {
		snap := s.gw.Snapshot()
		if snap == nil {
			return
		}
		files = map[string]bool{}
		want := map[string]bool{}
		for _, f := range snap.SecretFiles() {
			files[f] = true
			want[filepath.Dir(f)] = true
		}
		if w != nil {
			for d := range dirs {
				if !want[d] {
					_ = w.Remove(d)
					delete(dirs, d)
				}
			}
			for d := range want {
				if dirs[d] {
					continue
				}
				if err := w.Add(d); err != nil {
					s.logger.Warn("a secret file's directory is not watched", "dir", d, "error", err)
					continue
				}
				dirs[d] = true
			}
		}
		refresh = snap.VaultRefresh()
		// A file written between the compile and the watch: reload now.
		if snap.SecretFilesChanged() {
			debounce.Reset(watchDebounce)
		}
	}
	follow()
	vault := time.NewTimer(time.Hour)
	vault.Stop()
	defer vault.Stop()
	armVault := func() {
		vault.Stop()
		if refresh > 0 {
			vault.Reset(refresh)
		}
	}
	armVault()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
			old := refresh
			follow()
			if refresh != old {
				armVault()
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			// ..data is the symlink Kubernetes swaps to update a mounted Secret.
			if files[ev.Name] || (filepath.Base(ev.Name) == "..data" && dirs[filepath.Dir(ev.Name)]) {
				debounce.Reset(watchDebounce)
			}
		case err, ok := <-errs:
			if !ok {
				return
			}
			s.logger.Warn("watching secret files", "error", err)
		case <-debounce.C:
			_ = s.reload(ctx, "secret file changed", audit.ActorSystem, true)
		case <-vault.C:
			_ = s.reload(ctx, "vault refresh", audit.ActorSystem, true)
			armVault()
		}
	}
}
