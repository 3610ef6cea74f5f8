package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

func (s *streams) serveCmd() *cobra.Command {
	var (
		file  string
		watch bool
		logs  logFlags
	)
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run the gateway with a configuration file",
		Long: `Run the gateway. The configuration is validated and compiled before anything
listens; an invalid file is reported with line and column and nothing starts.

SIGHUP, or a change to the file (unless --watch=false), reloads it: a valid
new configuration is swapped in atomically, an invalid one is refused and the
running one keeps serving. SIGTERM or SIGINT stops accepting connections and
drains in-flight requests up to server.timeouts.shutdown, then exits 0.

Run-time state (registered instances, consumers and keys made through the
admin API, the audit log) is kept in storage.data_dir (default
./gatehouse-data); an unusable directory stops the start with a clear error.

The access log goes to stdout, one JSON line per request; everything else to
stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return fmt.Errorf("--config is required")
			}
			logger, access, err := logs.loggers(s)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			srv, err := server.New(ctx, server.Options{
				Load:          func() (*config.Document, config.Diagnostics) { return config.Load(file) },
				ConfigFile:    file,
				Logger:        logger,
				AccessLogger:  accessText(logs, access),
				AccessLogJSON: accessJSON(logs, s),
			})
			if err != nil {
				fmt.Fprintln(s.err, err)
				return exitError{1}
			}
			if err := srv.Listen(ctx); err != nil {
				srv.Close()
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						_ = srv.Reload(ctx, "SIGHUP")
					}
				}
			}()
			if watch {
				go func() {
					if err := srv.Watch(ctx); err != nil {
						logger.Warn("not watching the configuration file", "error", err)
					}
				}()
			} else {
				go srv.WatchSecrets(ctx) // secret files and Vault's refresh, whatever the flag
			}
			return srv.Serve(ctx)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().BoolVar(&watch, "watch", true, "reload when the configuration file changes (secret files are watched, and Vault refreshed, either way)")
	logs.add(cmd, "json")
	return cmd
}

// accessJSON is where the fast JSON access log goes: stdout, when the log
// format is json.
func accessJSON(f logFlags, s *streams) io.Writer {
	if f.format == "json" {
		return s.out
	}
	return nil
}

// accessText is the slog access logger, used for the text format.
func accessText(f logFlags, l *slog.Logger) *slog.Logger {
	if f.format == "json" {
		return nil
	}
	return l
}
