// Command gatehouse is an identity-aware API gateway. See the README and
// 'gatehouse --help'.
package main

import (
	"context"
	"os"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/cli"
	"github.com/gatehouse-dev/gatehouse/internal/gctune"
)

func main() {
	// A gateway's live heap is small and its allocation rate high: unless
	// GOGC is set, GOGC follows the live heap so that the heap goal is at
	// least 64 MiB above it, and never below 400 (gctune.Default; see
	// docs/performance.md). GOMEMLIMIT, when set, still caps the goal.
	if _, set := os.LookupEnv("GOGC"); !set {
		go gctune.Run(context.Background(), gctune.Default, time.Second)
	}
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
