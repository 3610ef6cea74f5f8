package cli

import (
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/devmode"
)

func (s *streams) devCmd() *cobra.Command {
	var (
		o    devmode.Options
		logs logFlags
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a self-contained demo: gateway, token issuer and backends (development only)",
		Long: `Run a demo gateway on its embedded configuration, with a built-in OpenID
Connect token issuer and two demo backend instances, and print commands to
try: a call with a token, one with an API key, a 401 and a 403.

DEVELOPMENT ONLY. The issuer signs tokens for anyone who asks, and the API key
is printed on the terminal. 'gatehouse serve' never starts any of this.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			logger, access, err := logs.loggers(s)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			o.Logger, o.AccessLogger, o.Out = logger, access, s.out
			env, err := devmode.Start(ctx, o)
			if err != nil {
				return err
			}
			defer env.Close()
			return env.Server.Serve(ctx)
		},
	}
	cmd.Flags().StringVar(&o.Addr, "addr", "127.0.0.1:8080", "gateway address")
	cmd.Flags().StringVar(&o.IssuerAddr, "issuer-addr", "127.0.0.1:8081", "development token issuer address")
	cmd.Flags().StringVar(&o.AdminAddr, "admin-addr", "127.0.0.1:9901", "admin listener address")
	logs.add(cmd, "text")
	return cmd
}
