// Package cli is the gatehouse command line: serve, validate, schema,
// dev, keys and version. It parses flags and wires packages together;
// the work is done elsewhere.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=v1.2.3".
var Version = ""

// exitError carries an exit code for errors already reported to the user.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(stderr, "gatehouse:", err)
	return 1
}

type streams struct {
	in       io.Reader
	out, err io.Writer
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	s := &streams{in: stdin, out: stdout, err: stderr}
	root := &cobra.Command{
		Use:   "gatehouse",
		Short: "Gatehouse: an identity-aware API gateway",
		Long: `Gatehouse authenticates every call (OIDC/JWT, API keys, mTLS), authorizes it
by the caller's groups, roles and scopes, and proxies it to healthy backends,
with its whole policy kept as code.

Start with 'gatehouse dev' for a self-contained demo.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		s.serveCmd(),
		s.validateCmd(),
		s.diffCmd(),
		s.schemaCmd(),
		s.devCmd(),
		s.keysCmd(),
		s.versionCmd(),
		s.importCmd(),
		s.registerCmd(),
		s.auditCmd(),
		s.lintCmd(),
		s.signingKeysCmd(),
		s.suggestCmd(),
	)
	return root
}

func (s *streams) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(s.out, "gatehouse", versionString())
			return nil
		},
	}
}

func versionString() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	v := info.Main.Version
	for _, st := range info.Settings {
		if st.Key == "vcs.revision" && len(st.Value) >= 12 {
			v += " " + st.Value[:12]
		}
	}
	return strings.TrimSpace(v + " " + info.GoVersion)
}

// logFlags are the logging options shared by serve and dev.
type logFlags struct {
	level  string
	format string
}

func (f *logFlags) add(cmd *cobra.Command, defFormat string) {
	cmd.Flags().StringVar(&f.level, "log-level", "info", "log level: debug, info, warn, error")
	cmd.Flags().StringVar(&f.format, "log-format", defFormat, "log format: json or text")
}

// loggers returns the process logger (stderr) and the access logger (stdout).
func (f *logFlags) loggers(s *streams) (*slog.Logger, *slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return nil, nil, fmt.Errorf("--log-level: %v", err)
	}
	mk := func(w io.Writer) (slog.Handler, error) {
		opts := &slog.HandlerOptions{Level: level}
		switch f.format {
		case "json":
			return slog.NewJSONHandler(w, opts), nil
		case "text":
			return slog.NewTextHandler(w, opts), nil
		default:
			return nil, fmt.Errorf("--log-format must be json or text, not %q", f.format)
		}
	}
	eh, err := mk(s.err)
	if err != nil {
		return nil, nil, err
	}
	ah, _ := mk(s.out)
	return slog.New(eh), slog.New(ah), nil
}
