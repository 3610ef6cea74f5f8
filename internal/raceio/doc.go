// Package raceio makes, for system calls made raw (syscall.RawSyscall,
// which the race detector does not see), the annotations package
// syscall's Read and Write make under -race: what was written before a
// write happens before what a read returns after it, through package
// syscall's own variable, so that a test reading in the same process
// what was written raw sees no race that is not there. It does so by
// calling syscall.Write and syscall.Read with nothing to transfer on
// /dev/null, in race builds only; elsewhere its functions do nothing.
package raceio
