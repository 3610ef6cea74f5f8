package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/postgres"
)

// actionSigningKeyUnpublish is the audit action of a public signing key
// removed from the shared store by hand.
const actionSigningKeyUnpublish = "signing_key.unpublish"

// openShared opens the PostgreSQL store of the configuration in file; the
// published signing keys live only there.
func openShared(ctx context.Context, file string) (*postgres.Store, error) {
	if file == "" {
		return nil, errors.New("-c FILE is required: the configuration whose storage.postgres holds the published keys")
	}
	doc, diags := config.Load(file)
	if diags != nil {
		return nil, diags
	}
	pg := doc.Config.Storage.Postgres
	if pg == nil {
		return nil, fmt.Errorf("%s has no storage.postgres: a single gateway publishes no keys to a store; to revoke its keys, stop it, empty backend_identity.key_dir and start it", file)
	}
	return openPostgres(ctx, pg)
}

func (s *streams) signingKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "signing-keys",
		Short: "List or unpublish the backend signing keys gateways share",
		Long: `Gateways that share a PostgreSQL store (storage.postgres) publish the public
halves of their backend token signing keys there, and each serves all of
them in its JWKS. These commands read that table directly (-c names the
configuration; they need the database's credentials, not the admin API's).

To revoke a key early (its private key may have leaked): on the gateway that
holds it, stop the gateway, remove the key's file (or every file) from
backend_identity.key_dir and start it again, so that it signs with a new key
and never publishes the old one again; then run 'gatehouse signing-keys
unpublish -c FILE KID' so that the other gateways drop it from their JWKS at
their next sync, instead of serving it until its lease runs out (up to an
hour and a little more). Tokens it signed stop verifying once backends
refresh their copy of the JWKS.`,
	}
	var listFile string
	list := &cobra.Command{
		Use:   "list -c FILE",
		Short: "Print the published keys: kid, algorithm, when each signs and until when it stays published",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openShared(cmd.Context(), listFile)
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := st.ListPublishedKeys(cmd.Context(), time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%-43s  %-5s  %-20s  %s\n", "KID", "ALG", "SIGNS FROM", "PUBLISHED UNTIL")
			for _, k := range keys {
				fmt.Fprintf(s.out, "%-43s  %-5s  %-20s  %s\n", k.KID, k.Alg, k.Activates.UTC().Format(time.RFC3339), k.Expires.UTC().Format(time.RFC3339))
			}
			return nil
		},
	}
	list.Flags().StringVarP(&listFile, "config", "c", "", "the configuration whose storage.postgres holds the keys")

	var unpubFile, actor string
	unpublish := &cobra.Command{
		Use:   "unpublish -c FILE KID...",
		Short: "Remove published keys, so that every gateway drops them from its JWKS at its next sync",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openShared(ctx, unpubFile)
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := st.ListPublishedKeys(ctx, time.Time{})
			if err != nil {
				return err
			}
			var found, missing []string
			for _, kid := range args {
				if slices.ContainsFunc(keys, func(k store.PublishedKey) bool { return k.KID == kid }) {
					found = append(found, kid)
				} else {
					missing = append(missing, kid)
				}
			}
			if len(found) > 0 {
				if err := st.DeletePublishedKeys(ctx, found); err != nil {
					return err
				}
				rec := audit.NewRecorder(st, slog.New(slog.DiscardHandler), nil)
				for _, kid := range found {
					if err := rec.Record(ctx, audit.Entry{Actor: actor, Action: actionSigningKeyUnpublish, Target: "signing_key/" + kid,
						Detail: "removed from the published keys by 'gatehouse signing-keys unpublish'"}); err != nil {
						fmt.Fprintf(s.err, "warning: key %s unpublished, but the audit record failed: %v\n", kid, err)
					}
					fmt.Fprintf(s.out, "unpublished %s: the gateways drop it from their JWKS within one sync_interval; a gateway that still holds it in its key_dir publishes it again at its next sync\n", kid)
				}
			}
			for _, kid := range missing {
				fmt.Fprintf(s.err, "no published key %s\n", kid)
			}
			if len(missing) > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	unpublish.Flags().StringVarP(&unpubFile, "config", "c", "", "the configuration whose storage.postgres holds the keys")
	unpublish.Flags().StringVar(&actor, "actor", "cli", "who the audit record names")
	cmd.AddCommand(list, unpublish)
	return cmd
}
