package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// processes are the programs the benchmark started; every one is stopped
// by its PID when the benchmark ends.
type processes struct {
	mu    sync.Mutex
	procs []*proc
}

type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func (p *processes) start(ctx context.Context, name string, argv, env []string, dir string) error {
	return p.startWithStdout(ctx, name, argv, env, dir, io.Discard)
}

func (p *processes) startWithStdout(ctx context.Context, name string, argv, env []string, dir string, stdout io.Writer) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	p.mu.Lock()
	p.procs = append(p.procs, &proc{name: name, cmd: cmd, stderr: &stderr})
	p.mu.Unlock()
	return nil
}

func (p *processes) stderr(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.procs {
		if pr.name == name {
			return pr.stderr.String()
		}
	}
	return ""
}

// stopAll sends SIGTERM to each process, waits up to 5 s, then kills it.
func (p *processes) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.procs) - 1; i >= 0; i-- {
		pr := p.procs[i]
		_ = pr.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = pr.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = pr.cmd.Process.Kill()
			<-done
		}
	}
	p.procs = nil
}

// clockTick is the unit of /proc/PID/stat's utime and stime (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpu returns the CPU time (user + system) the named process and its
// children (nginx's worker) have used, or -1 when it cannot be read.
func (p *processes) cpu(name string) time.Duration {
	p.mu.Lock()
	var pid int
	for _, pr := range p.procs {
		if pr.name == name {
			pid = pr.cmd.Process.Pid
		}
	}
	p.mu.Unlock()
	if pid == 0 {
		return -1
	}
	total := time.Duration(0)
	todo := []int{pid}
	for len(todo) > 0 {
		id := todo[0]
		todo = todo[1:]
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", id))
		if err != nil {
			return -1
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			return -1
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * clockTick
		if kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", id, id)); err == nil {
			for _, k := range strings.Fields(string(kids)) {
				if n, err := strconv.Atoi(k); err == nil {
					todo = append(todo, n)
				}
			}
		}
	}
	return total
}
