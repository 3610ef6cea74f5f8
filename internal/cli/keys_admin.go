package cli

import (
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// addKeysAdmin adds the keys commands that manage consumers kept in the
// gateway's store, through the admin API.
func (s *streams) addKeysAdmin(cmd *cobra.Command) {
	var af adminFlags
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a consumer in the gateway's store and print its new key (shown once)",
		Args:  cobra.ExactArgs(1),
	}
	var groups, roles, scopes []string
	var both bool
	create.Flags().StringSliceVar(&groups, "groups", nil, "groups granted to the consumer")
	create.Flags().StringSliceVar(&roles, "roles", nil, "roles granted to the consumer")
	create.Flags().StringSliceVar(&scopes, "scopes", nil, "scopes granted to the consumer")
	create.Flags().BoolVar(&both, "secondary", false, "also make a secondary key")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := af.client()
		if err != nil {
			return err
		}
		slots := []string{"primary"}
		if both {
			slots = append(slots, "secondary")
		}
		var out struct {
			Keys map[string]string `json:"keys"`
		}
		err = c.do(cmd.Context(), "POST", "/v1/consumers", map[string]any{
			"name": args[0], "groups": groups, "roles": roles, "scopes": scopes, "keys": slots,
		}, &out)
		if err != nil {
			return err
		}
		for _, slot := range slots {
			fmt.Fprintf(s.out, "%-9s %s\n", slot+":", out.Keys[slot])
		}
		fmt.Fprintln(s.err, "Give the key to the consumer now, over a safe channel: it is not shown again.")
		return nil
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the consumers in the gateway's store and their key slots",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client()
			if err != nil {
				return err
			}
			var out struct {
				Consumers []struct {
					Name   string   `json:"name"`
					Groups []string `json:"groups"`
					Scopes []string `json:"scopes"`
					Keys   []struct {
						Slot    string `json:"slot"`
						KeyID   string `json:"key_id"`
						Created string `json:"created"`
					} `json:"keys"`
				} `json:"consumers"`
			}
			if err := c.do(cmd.Context(), "GET", "/v1/consumers", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONSUMER\tSLOT\tKEY ID\tCREATED\tGROUPS\tSCOPES")
			for _, cons := range out.Consumers {
				if len(cons.Keys) == 0 {
					fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\t%s\n", cons.Name, strings.Join(cons.Groups, ","), strings.Join(cons.Scopes, " "))
				}
				for _, k := range cons.Keys {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cons.Name, k.Slot, k.KeyID, k.Created, strings.Join(cons.Groups, ","), strings.Join(cons.Scopes, " "))
				}
			}
			return tw.Flush()
		},
	}

	var slot string
	rotate := &cobra.Command{
		Use:   "rotate NAME --slot primary|secondary",
		Short: "Replace the key in one slot with a new one (printed once); the other slot keeps working",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client()
			if err != nil {
				return err
			}
			var out struct {
				Key   string `json:"key"`
				KeyID string `json:"key_id"`
			}
			if err := c.do(cmd.Context(), "POST", "/v1/consumers/"+url.PathEscape(args[0])+"/keys/"+url.PathEscape(slot), nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%-9s %s\n", slot+":", out.Key)
			fmt.Fprintln(s.err, "Give the key to the consumer now, over a safe channel: it is not shown again.")
			return nil
		},
	}
	rotate.Flags().StringVar(&slot, "slot", "", "primary or secondary")
	_ = rotate.MarkFlagRequired("slot")

	var revokeSlot string
	var all bool
	revoke := &cobra.Command{
		Use:   "revoke NAME (--slot primary|secondary | --all)",
		Short: "Revoke one key of a consumer, or delete the consumer and all its keys",
		Long:  "Revoke a key kept in the gateway's store. It stops working on every request within a second.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client()
			if err != nil {
				return err
			}
			path := "/v1/consumers/" + url.PathEscape(args[0])
			switch {
			case all && revokeSlot == "":
			case !all && revokeSlot != "":
				path += "/keys/" + url.PathEscape(revokeSlot)
			default:
				return fmt.Errorf("give --slot or --all")
			}
			if err := c.do(cmd.Context(), "DELETE", path, nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(s.out, "revoked")
			return nil
		},
	}
	revoke.Flags().StringVar(&revokeSlot, "slot", "", "primary or secondary")
	revoke.Flags().BoolVar(&all, "all", false, "delete the consumer and all its keys")

	for _, c := range []*cobra.Command{create, list, rotate, revoke} {
		af.add(c)
		cmd.AddCommand(c)
	}
}
