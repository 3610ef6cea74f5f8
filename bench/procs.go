package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
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
