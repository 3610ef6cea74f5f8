package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

func (s *streams) diffCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Show what a configuration change changes, setting by setting",
		Long: `Compare two configuration files (say, the one in service and a pull request's)
setting by setting, and print what changes: list items by their names
(apis[orders].operations[getOrder].auth.require.scopes.all_of), whole APIs,
operations, backends, consumers or limits added (+) or removed (-), and
values set (+), unset (-) or changed (~). A setting left out and one written
with its default value differ, as the files do. Secrets show as their
references, never values. Both files are validated first (as 'validate'
does for the file alone; nothing is compiled or contacted).

The exit status is 0 when nothing changes, 1 when something does, and 2
when a file does not load, as diff(1)'s.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var docs [2]*config.Document
			bad := false
			for i, file := range args {
				doc, diags := config.Load(file)
				if diags != nil {
					bad = true
					var ds config.Diagnostics
					if errors.As(diags, &ds) {
						for _, d := range ds {
							fmt.Fprintln(s.out, d.String())
						}
					} else {
						fmt.Fprintf(s.out, "%s: %v\n", file, diags)
					}
					continue
				}
				docs[i] = doc
			}
			if bad {
				return exitError{2}
			}
			changes := config.Compare(docs[0].Config, docs[1].Config)
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				if changes == nil {
					changes = []config.Change{}
				}
				if err := enc.Encode(map[string]any{"old": args[0], "new": args[1], "changes": changes}); err != nil {
					return err
				}
			} else {
				printChanges(s.out, changes)
			}
			if len(changes) > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the changes as JSON")
	return cmd
}

// printChanges prints one line per change, with control characters of
// the files' values escaped.
func printChanges(w io.Writer, changes []config.Change) {
	if len(changes) == 0 {
		fmt.Fprintln(w, "no changes")
		return
	}
	for _, c := range changes {
		switch {
		case c.Added:
			fmt.Fprintf(w, "+ %s (added)\n", printable(c.Path))
		case c.Removed:
			fmt.Fprintf(w, "- %s (removed)\n", printable(c.Path))
		case c.Old == "":
			fmt.Fprintf(w, "+ %s: %s\n", printable(c.Path), printable(c.New))
		case c.New == "":
			fmt.Fprintf(w, "- %s: %s\n", printable(c.Path), printable(c.Old))
		default:
			fmt.Fprintf(w, "~ %s: %s -> %s\n", printable(c.Path), printable(c.Old), printable(c.New))
		}
	}
}
