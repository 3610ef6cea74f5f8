package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// pgoScenarios are the load whose CPU profiles make Gatehouse's PGO
// profile: the two Gatehouse scenarios, weighted alike.
var pgoScenarios = []string{"gatehouse-passthrough", "gatehouse-full-chain"}

// runPGO measures Gatehouse's two scenarios once each (o.duration at
// high load, with CPU profiles) and writes the merge of their profiles to
// file: cmd/gatehouse/default.pgo, the profile go build uses for
// profile-guided optimization (docs/performance.md). Nothing else is
// measured, and no result replaces latest.json.
func runPGO(o options, file string) error {
	dir, err := os.MkdirTemp("", "gatehouse-pgo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.rounds, o.baseline, o.out, o.profile = 1, "", "", dir
	o.only = pgoScenarios[0] + "," + pgoScenarios[1]
	if err := run(o); err != nil {
		return err
	}
	args := []string{"tool", "pprof", "-proto"}
	for _, s := range pgoScenarios {
		p := filepath.Join(dir, s+".cpu.pprof")
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("pgo: no CPU profile of %s: %w", s, err)
		}
		args = append(args, p)
	}
	var merged, stderr bytes.Buffer
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = &merged, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgo: go tool pprof: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if merged.Len() == 0 {
		return fmt.Errorf("pgo: go tool pprof wrote an empty profile")
	}
	// Written beside file and renamed over it: an interrupted run leaves
	// the old profile whole.
	tmp, err := os.CreateTemp(filepath.Dir(file), ".default.pgo-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(merged.Bytes()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s (%d bytes): the CPU profiles of %s and %s, merged\n", file, merged.Len(), pgoScenarios[0], pgoScenarios[1])
	return nil
}
