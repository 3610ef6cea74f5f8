package server

import (
	"time"

	"github.com/fsnotify/fsnotify"
)

// SetConfigWatcher replaces the configuration file watcher's constructor
// until the returned function restores it.
func SetConfigWatcher(f func() (*fsnotify.Watcher, error)) (restore func()) {
	old := newConfigWatcher
	newConfigWatcher = f
	return func() { newConfigWatcher = old }
}

// SetSecretsWatcher replaces the secret files watcher's constructor
// until the returned function restores it.
func SetSecretsWatcher(f func() (*fsnotify.Watcher, error)) (restore func()) {
	old := newSecretsWatcher
	newSecretsWatcher = f
	return func() { newSecretsWatcher = old }
}

// SetAdminReadTimeout replaces the admin listener's request timeout for
// the servers started until the returned function restores it.
func SetAdminReadTimeout(d time.Duration) (restore func()) {
	old := adminReadTimeout
	adminReadTimeout = d
	return func() { adminReadTimeout = old }
}

// SetUpstreamHoursEvery replaces how often the suggestions' upstream
// statistics are saved and read back, for the servers started until the
// returned function restores it.
func SetUpstreamHoursEvery(d time.Duration) (restore func()) {
	old := upstreamHoursEvery
	upstreamHoursEvery = d
	return func() { upstreamHoursEvery = old }
}
