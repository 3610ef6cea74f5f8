//go:build linux && race

package raceio

import (
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

var devNull = sync.OnceValue(func() int {
	fd, err := syscall.Open("/dev/null", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		panic("raceio: opening /dev/null for race annotations: " + err.Error())
	}
	return fd
})

// ReleaseMerge is what syscall.Write tells the race detector before a
// write.
func ReleaseMerge() { syscall.Write(devNull(), nil) }

// Acquire is what syscall.Read tells the race detector after a read
// without error.
func Acquire() { syscall.Read(devNull(), nil) }

// ReadRange reports that p is read (by a write system call).
func ReadRange(p []byte) {
	if len(p) > 0 {
		runtime.RaceReadRange(unsafe.Pointer(&p[0]), len(p))
	}
}

// WriteRange reports that p is written (by a read system call).
func WriteRange(p []byte) {
	if len(p) > 0 {
		runtime.RaceWriteRange(unsafe.Pointer(&p[0]), len(p))
	}
}
