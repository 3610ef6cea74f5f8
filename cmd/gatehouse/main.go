// Command gatehouse is an identity-aware API gateway. See the README and
// 'gatehouse --help'.
package main

import (
	"context"
	"os"

	"github.com/gatehouse-dev/gatehouse/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
