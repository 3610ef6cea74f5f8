//go:build linux && race

package h1

import (
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// Under -race, package syscall's Read and Write tell the race detector
// that what was written before a write happens before what a read returns
// after it, through one variable of theirs. Raw system calls skip that, so
// a test reading a connection served by h1 (in the same process, through
// net/http or h1) would see races that are not there. These functions make
// the same annotations on the same variable, by calling syscall.Write and
// syscall.Read with nothing to transfer on /dev/null (race builds only).
var devNull = sync.OnceValue(func() int {
	fd, err := syscall.Open("/dev/null", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		panic("h1: opening /dev/null for race annotations: " + err.Error())
	}
	return fd
})

func raceReleaseMerge() { syscall.Write(devNull(), nil) } // ReleaseMerge, before the write
func raceAcquire()      { syscall.Read(devNull(), nil) }  // Acquire, after a read without error

func raceReadRange(p []byte) {
	if len(p) > 0 {
		runtime.RaceReadRange(unsafe.Pointer(&p[0]), len(p))
	}
}

func raceWriteRange(p []byte) {
	if len(p) > 0 {
		runtime.RaceWriteRange(unsafe.Pointer(&p[0]), len(p))
	}
}
