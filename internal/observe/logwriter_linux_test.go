package observe

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestLogWriter_RegularFileWritesPlain(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newLogWriter(f)
	lw, ok := w.(*logWriter)
	if !ok {
		t.Skipf("the test directory's filesystem is not in localFS; got %T", w)
	}
	if !lw.plain {
		t.Fatal("a regular file on a local filesystem should be written with plain write(2)")
	}
	want := writeLines(t, w, 3000) // ~200 KB: several writes
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file holds %d bytes, want %d", len(got), len(want))
	}
}

func TestLogWriter_AppendsAtFilePosition(t *testing.T) {
	name := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(name, []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := newLogWriter(f).Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(name)
	if string(got) != "before\nafter\n" {
		t.Fatalf("file = %q", got)
	}
}

// A pipe takes RWF_NOWAIT writes; when it is full the rest is written the
// ordinary way, waiting for the reader, and nothing is lost or reordered.
func TestLogWriter_FullPipeFallsBackAndLosesNothing(t *testing.T) {
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w := newLogWriter(pw)
	lw, ok := w.(*logWriter)
	if !ok || lw.plain || !lw.nowait.Load() {
		t.Fatalf("a pipe should be written with RWF_NOWAIT, got %#v", w)
	}
	var got bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond) // let the pipe (64 KiB) fill first
		io.Copy(&got, r)
	}()
	// One write far larger than the pipe: the first 64 KiB go directly,
	// the rest through os.File once the reader drains.
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB
	n, err := w.Write(big)
	if err != nil || n != len(big) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
	}
	want := append(big, writeLines(t, w, 100)...)
	pw.Close()
	wg.Wait()
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("reader got %d bytes, want %d (or they differ)", got.Len(), len(want))
	}
	if !lw.nowait.Load() {
		t.Fatal("EAGAIN from a full pipe must not switch RWF_NOWAIT off")
	}
}

func TestLogWriter_BrokenPipeIsAnError(t *testing.T) {
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	r.Close()
	_, err = newLogWriter(pw).Write([]byte("line\n"))
	if err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("Write to a pipe without a reader = %v, want a broken pipe error", err)
	}
}

func TestLogWriter_UnixSocket(t *testing.T) {
	a, b, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	w := newLogWriter(a)
	if _, ok := w.(*logWriter); !ok {
		t.Fatalf("a socket should get a logWriter, got %T", w)
	}
	var got bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&got, b); close(done) }()
	want := writeLines(t, w, 2000)
	a.Close()
	<-done
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("peer got %d bytes, want %d", got.Len(), len(want))
	}
}

func TestLogWriter_DevNullAndOtherWriters(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newLogWriter(f)
	if _, ok := w.(*logWriter); !ok {
		t.Fatalf("/dev/null should get a logWriter, got %T", w)
	}
	writeLines(t, w, 10)
	var buf bytes.Buffer
	if newLogWriter(&buf) != io.Writer(&buf) {
		t.Fatal("a writer that is not an *os.File must be used as it is")
	}
}

// A failed flush drops its batch, is counted, and the lines after it are
// written when the output works again.
func TestJSONAccessLog_WriteErrorDropsBatchAndGoesOn(t *testing.T) {
	fw := &flakyWriter{fail: true}
	l := NewJSONAccessLog(fw, time.Hour)
	l.Log(&Access{RequestID: "lost", Status: 200})
	if err := l.sink.flushNow(); err == nil {
		t.Fatal("flush to a failing writer reported no error")
	}
	if got := l.WriteErrors(); got != 1 {
		t.Fatalf("WriteErrors = %d, want 1", got)
	}
	fw.setFail(false)
	l.Log(&Access{RequestID: "kept", Status: 200})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out := fw.String()
	if !strings.Contains(out, `"request_id":"kept"`) || strings.Contains(out, `"lost"`) {
		t.Fatalf("output after recovery = %q", out)
	}
}

type flakyWriter struct {
	mu   sync.Mutex
	fail bool
	bytes.Buffer
}

func (w *flakyWriter) setFail(v bool) { w.mu.Lock(); w.fail = v; w.mu.Unlock() }

func (w *flakyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return 0, errors.New("disk full")
	}
	return w.Buffer.Write(p)
}

func (w *flakyWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.Buffer.String() }

// writeLines writes n access-log-sized lines to w and returns them.
func writeLines(t *testing.T, w io.Writer, n int) []byte {
	t.Helper()
	var all []byte
	for i := range n {
		line := []byte(strings.Repeat("x", 60+i%50) + "\n")
		if _, err := w.Write(line); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		all = append(all, line...)
	}
	return all
}

// socketPair returns the two ends of a connected Unix stream socket as
// files.
func socketPair() (*os.File, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "socket-a"), os.NewFile(uintptr(fds[1]), "socket-b"), nil
}
