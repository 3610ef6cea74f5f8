//go:build !unix

package connlimit

// Default is the limit when the configuration sets none: 4096 where the
// open-file limit cannot be read.
func Default() int { return 4096 }
