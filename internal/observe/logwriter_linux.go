package observe

import (
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gatehouse-dev/gatehouse/internal/raceio"
)

// A write system call made through os.File enters the Go scheduler's
// system-call state, and that wakes the runtime's monitor thread (sysmon)
// whenever it sleeps, which it does each time the process goes idle.
// Under load with GOMAXPROCS=1 that is one wake-up per flush of the
// access log, and a few dozen microseconds of the monitor's polling on
// the same core after it: about 1 µs per request in the benchmark.
//
// logWriter makes the access log's writes directly, without entering
// that state, when the kernel can promise they will not block:
//
//   - pipes, sockets and character devices: pwritev2 with RWF_NOWAIT,
//     which the kernel either completes without sleeping or refuses with
//     EAGAIN (a full pipe) or EOPNOTSUPP; what is refused is then written
//     through os.File as before;
//   - regular files on a local filesystem (ext4, XFS, Btrfs, tmpfs,
//     overlayfs, F2FS): a plain write, which copies into the page cache, as
//     nginx writes its logs. Network filesystems keep os.File's write.
type logWriter struct {
	f      *os.File
	rc     syscall.RawConn
	plain  bool        // a regular file on a local filesystem: write(2)
	nowait atomic.Bool // pwritev2(RWF_NOWAIT) has not been refused
}

// Local filesystems' statfs magic numbers (linux/magic.h).
var localFS = map[int64]bool{
	0xEF53:     true, // ext2/3/4
	0x58465342: true, // XFS
	0x9123683E: true, // Btrfs
	0x01021994: true, // tmpfs
	0x794C7630: true, // overlayfs
	0xF2F52010: true, // F2FS
}

// newLogWriter returns w itself unless it is an *os.File that logWriter
// can write to directly.
func newLogWriter(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return w
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return w
	}
	lw := &logWriter{f: f, rc: rc}
	var st syscall.Stat_t
	var fs syscall.Statfs_t
	var serr, ferr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.Fstat(int(fd), &st)
		ferr = syscall.Fstatfs(int(fd), &fs)
	}); err != nil || serr != nil {
		return w
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		if ferr != nil || !localFS[int64(fs.Type)] {
			return w
		}
		lw.plain = true
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR:
		lw.nowait.Store(true)
	default:
		return w
	}
	return lw
}

// Write writes all of p, directly where it can and through os.File for
// the rest.
func (w *logWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !w.plain && !w.nowait.Load() {
		return w.f.Write(p)
	}
	written := 0
	var errno syscall.Errno
	err := w.rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			n, e := w.write(fd, p[written:])
			switch {
			case e == syscall.EINTR:
				continue
			case e != 0:
				errno = e
				return true
			}
			written += n
		}
		return true
	})
	switch {
	case err != nil:
		return written, err
	case errno == 0:
		return written, nil
	case errno == syscall.EAGAIN:
		// A full pipe or socket: os.File waits for room.
	case errno == syscall.EOPNOTSUPP || errno == syscall.ENOSYS || errno == syscall.EINVAL:
		w.nowait.Store(false) // this file does not take RWF_NOWAIT
	default:
		return written, &os.PathError{Op: "write", Path: w.f.Name(), Err: errno}
	}
	n, err := w.f.Write(p[written:])
	return written + n, err
}

// write makes one write system call for p without entering the
// scheduler's system-call state.
func (w *logWriter) write(fd uintptr, p []byte) (int, syscall.Errno) {
	raceio.ReleaseMerge()
	raceio.ReadRange(p)
	if w.plain {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		return int(n), e
	}
	iov := syscall.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	// Offset -1: the file's own position, as write(2).
	n, _, e := syscall.RawSyscall6(unix.SYS_PWRITEV2, fd, uintptr(unsafe.Pointer(&iov)), 1, ^uintptr(0), 0, unix.RWF_NOWAIT)
	return int(n), e
}
