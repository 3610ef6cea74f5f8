//go:build linux && race

package h1

import (
	"runtime"
	"unsafe"
)

// ioSync stands for the data passed through sockets: the race detector
// learns, as from package syscall's Read and Write, that what was written
// before a write happens before what a read returns after it (raw system
// calls would hide that, and a test reading its own gateway's traffic
// would see races that are not there).
var ioSync int64

func raceReleaseMerge() { runtime.RaceReleaseMerge(unsafe.Pointer(&ioSync)) }
func raceAcquire()      { runtime.RaceAcquire(unsafe.Pointer(&ioSync)) }

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
