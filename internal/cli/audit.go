package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/store/sqlite"
)

// storeFlags locate the store that audit commands read directly.
type storeFlags struct {
	dataDir string
	config  string
}

func (f *storeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "the gateway's data directory (storage.data_dir)")
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "read storage.data_dir, or storage.postgres, from this configuration file")
}

// auditStore is what the audit commands read.
type auditStore interface {
	store.AuditLog
	Close() error
}

// open opens the store the flags name: the embedded store of a data
// directory, or the PostgreSQL store of a configuration with
// storage.postgres (its password reference read as the gateway would).
func (f *storeFlags) open(ctx context.Context) (auditStore, error) {
	dir := f.dataDir
	if dir == "" && f.config != "" {
		doc, diags := config.Load(f.config)
		if diags != nil {
			return nil, diags
		}
		if pg := doc.Config.Storage.Postgres; pg != nil {
			return openPostgres(ctx, pg)
		}
		dir = doc.Config.Storage.EffectiveDataDir()
	}
	if dir == "" {
		dir = config.DefaultDataDir
	}
	return sqlite.Open(ctx, dir, sqlite.Options{MustExist: true})
}

// openPostgres opens the PostgreSQL store of storage.postgres, its
// password resolved from the environment or a file.
func openPostgres(ctx context.Context, pg *config.PostgresStorage) (*postgres.Store, error) {
	// A tool opens the gateways' store as it is: it creates no schema
	// and migrates nothing, so reading needs no more than SELECT.
	o := postgres.Options{URL: pg.URL, Schema: pg.EffectiveSchema(), NoMigrate: true}
	if !pg.Password.IsZero() {
		v, err := secret.Local{}.Resolve(ctx, pg.Password)
		if err != nil {
			return nil, fmt.Errorf("storage.postgres.password: %w", err)
		}
		o.Password = v.Reveal()
	}
	st, err := postgres.Open(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("storage.postgres: %w", err)
	}
	return st, nil
}

func (s *streams) auditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check and read the audit log",
		Long: `Check and read the gateway's audit log. These commands read the store
directly (safe while the gateway runs): the store file in the data directory,
or with -c and storage.postgres the PostgreSQL database, so they need read
access to it, not admin API credentials.`,
	}
	var sf storeFlags
	var head string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the hash chain; name the first record altered or removed (exit 1)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var expect *audit.Head
			if head != "" {
				h, err := audit.ParseHead(head)
				if err != nil {
					return fmt.Errorf("--head: %v", err)
				}
				expect = &h
			}
			st, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			res, err := audit.Verify(cmd.Context(), st, expect)
			if err != nil {
				return err
			}
			if res.Problem != nil {
				fmt.Fprintf(s.out, "audit log NOT intact: %s (checked %d records)\n", res.Problem.Msg, res.Records)
				return exitError{1}
			}
			fmt.Fprintf(s.out, "audit log intact: %d records; head %d:%s\n", res.Records, res.HeadSeq, res.HeadHash)
			return nil
		},
	}
	verify.Flags().StringVar(&head, "head", "", "SEQ:HASH printed by an earlier verify; also detects records cut from the end")
	sf.add(verify)

	var tf storeFlags
	var follow bool
	var n int
	tail := &cobra.Command{
		Use:   "tail [-f]",
		Short: "Print the last audit records, and with -f follow new ones",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := tf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ctx := cmd.Context()
			// Find the start: the last n records.
			var last int64
			for {
				recs, err := st.ListAudit(ctx, last, 1000)
				if err != nil {
					return err
				}
				if len(recs) == 0 {
					break
				}
				last = recs[len(recs)-1].Seq
			}
			after := max(last-int64(n), 0)
			for {
				recs, err := st.ListAudit(ctx, after, 1000)
				if err != nil {
					if errors.Is(err, context.Canceled) {
						return nil
					}
					return err
				}
				for _, r := range recs {
					fmt.Fprintln(s.out, audit.Format(r))
					after = r.Seq
				}
				if !follow {
					return nil
				}
				if len(recs) == 0 {
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(500 * time.Millisecond):
					}
				}
			}
		},
	}
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records until interrupted")
	tail.Flags().IntVarP(&n, "lines", "n", 20, "how many of the last records to print first")
	tf.add(tail)
	cmd.AddCommand(verify, tail)
	return cmd
}
