package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/lint"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

func (s *streams) lintCmd() *cobra.Command {
	var format string
	var strict bool
	cmd := &cobra.Command{
		Use:   "lint [-f text|json] [--strict] FILE...",
		Short: "Find unauthenticated, shadowed and misaligned routes",
		Long: `Check configuration files for routes that are probably not meant: routes
served without authentication, operations and APIs that no request reaches
(judged by the gateway's own router), and, for APIs with an OpenAPI document,
routes whose auth does not give what the document's security requirements
ask for (anonymous routes, missing scopes, credential types the backend does
not take) and operations routed but not documented or the reverse.

Each finding is printed as
  file:line:col: severity: code: path.to.key: message
sorted by position, then a summary line; -f json prints a JSON array of
findings instead. A file that does not load or compile prints its
diagnostics, as 'gatehouse validate' does (to stderr with -f json).

Exit status: 1 when a file does not compile or there is an error finding
(or, with --strict, a warning); else 0. See docs/lint.md.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("-f must be text or json, not %q", format)
			}
			diagOut := s.out
			if format == "json" {
				diagOut = s.err
			}
			failed := 0
			findings := []lint.Finding{}
			for _, file := range args {
				doc, diags := config.Load(file)
				var snap *gateway.Snapshot
				if diags == nil {
					snap, diags = gateway.Compile(cmd.Context(), doc, &gateway.Runtime{
						Logger:  slog.New(slog.DiscardHandler),
						Secrets: secret.Local{},
					})
				}
				if diags != nil {
					failed++
					var ds config.Diagnostics
					if errors.As(diags, &ds) {
						for _, d := range ds {
							fmt.Fprintln(diagOut, d.String())
						}
					} else {
						fmt.Fprintf(diagOut, "%s: %v\n", file, diags)
					}
					continue
				}
				findings = append(findings, lint.Run(cmd.Context(), doc, snap)...)
			}
			lint.Sort(findings)
			var err error
			if format == "json" {
				err = writeFindingsJSON(s.out, findings)
			} else {
				err = writeFindingsText(s.out, findings, len(args), failed)
			}
			if err != nil {
				return err
			}
			bad := failed > 0
			for _, f := range findings {
				if f.Severity == lint.Error || strict && f.Severity == lint.Warning {
					bad = true
				}
			}
			if bad {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "text", "output format: text or json")
	cmd.Flags().BoolVar(&strict, "strict", false, "exit 1 on warnings too")
	return cmd
}

// writeFindingsText prints one line per finding and a summary; failed
// files are those that did not load or compile.
func writeFindingsText(w io.Writer, findings []lint.Finding, files, failed int) error {
	counts := map[lint.Severity]int{}
	for _, f := range findings {
		counts[f.Severity]++
		if _, err := fmt.Fprintln(w, f.String()); err != nil {
			return err
		}
	}
	notCompiled := ""
	if failed > 0 {
		notCompiled = fmt.Sprintf(" (%d not linted: it does not load or compile)", failed)
		if failed > 1 {
			notCompiled = fmt.Sprintf(" (%d not linted: they do not load or compile)", failed)
		}
	}
	_, err := fmt.Fprintf(w, "%s, %s, %d info in %s%s\n",
		lintCount(counts[lint.Error], "error"), lintCount(counts[lint.Warning], "warning"),
		counts[lint.Info], lintCount(files, "file"), notCompiled)
	return err
}

func writeFindingsJSON(w io.Writer, findings []lint.Finding) error {
	b, err := json.MarshalIndent(findings, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// lintCount is "1 error", "2 errors".
func lintCount(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
