package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func (s *streams) keysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make API keys and their hashes; manage consumers kept in the gateway's store",
	}
	s.addKeysAdmin(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "generate",
		Short: "Print a new random API key and the hash to put in the configuration",
		Long: `Print a new API key (256 random bits) and its SHA-256 hash. Give the key to
the consumer, once, over a safe channel; put only the hash in the
configuration (consumers[].keys.primary.sha256). The key cannot be recovered
from the hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := identity.GenerateKey()
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "key:    %s\nsha256: %s\n", key, identity.HashKey(key))
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "hash",
		Short: "Read an API key from standard input and print its hash",
		Long: `Read one API key from standard input (never from the command line, where
it would land in shell history and process listings) and print the SHA-256
hash to put in the configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			line, err := bufio.NewReader(s.in).ReadString('\n')
			key := strings.TrimRight(line, "\r\n")
			if key == "" {
				if err != nil {
					return fmt.Errorf("reading the key from standard input: %v", err)
				}
				return fmt.Errorf("no key on standard input")
			}
			fmt.Fprintln(s.out, identity.HashKey(key))
			return nil
		},
	})
	return cmd
}
