//go:build unix

package connlimit

import "syscall"

// Default is the limit when the configuration sets none: half of the
// process's open-file limit (a proxied connection holds two descriptors,
// the client's and the upstream's) after a reserve of 512 for idle
// upstream connections, files, watches and the admin listener; at least
// 64. Go raises the soft limit to the hard one at start, so this is the
// hard limit on Linux.
func Default() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 4096
	}
	return fromFileLimit(uint64(rl.Cur))
}
