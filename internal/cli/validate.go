package cli

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

func (s *streams) validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check configuration files without running them",
		Long: `Check configuration files: syntax, unknown keys, types, references between
sections, the default-deny rule, and everything compiling needs (certificate
and CA files, secret references, API key hashes). Every problem is reported
as file:line:col: path.to.key: message; the exit status is 1 if there is any.
Identity providers are not contacted.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			failed := false
			for _, file := range args {
				doc, diags := config.Load(file)
				if diags == nil {
					_, diags = gateway.Compile(cmd.Context(), doc, &gateway.Runtime{
						Logger:  slog.New(slog.DiscardHandler),
						Secrets: secret.Local{},
					})
				}
				if diags != nil {
					failed = true
					var ds config.Diagnostics
					if errors.As(diags, &ds) {
						for _, d := range ds {
							fmt.Fprintln(s.out, d.String())
						}
					}
					continue
				}
				fmt.Fprintf(s.out, "%s: ok (version %s)\n", file, gateway.Version(doc.Config))
			}
			if failed {
				return exitError{1}
			}
			return nil
		},
	}
}

func (s *streams) schemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the configuration (for editors)",
		Long: `Print the JSON Schema (draft 2020-12) of the configuration file. Point your
editor's YAML language server at it, e.g. with a first line
  # yaml-language-server: $schema=./gatehouse.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := config.Schema()
			if err != nil {
				return err
			}
			fmt.Fprintln(s.out, string(b))
			return nil
		},
	}
}
