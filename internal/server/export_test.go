package server

import "github.com/fsnotify/fsnotify"

// SetConfigWatcher replaces the configuration file watcher's constructor
// until the returned function restores it.
func SetConfigWatcher(f func() (*fsnotify.Watcher, error)) (restore func()) {
	old := newConfigWatcher
	newConfigWatcher = f
	return func() { newConfigWatcher = old }
}
