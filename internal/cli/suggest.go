package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/advisor"
)

func (s *streams) suggestCmd() *cobra.Command {
	var af adminFlags
	var minSamples uint64
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "suggest",
		Short: "Suggest timeouts and concurrency limits from what a running gateway observed",
		Long: `Ask a running gateway (its admin API, viewer role or above) what its last day of
traffic says about each operation's request deadline (timeouts.request) and each
backend's max_concurrent_requests, and print each suggestion with the numbers it
rests on and the YAML to set. The rules are in docs/suggestions.md.

By default only the settings to change are printed; --all adds those that fit
(keep) and those without enough traffic yet (wait).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client()
			if err != nil {
				return err
			}
			path := "/v1/suggestions"
			if minSamples > 0 {
				path += "?" + url.Values{"min_samples": {strconv.FormatUint(minSamples, 10)}}.Encode()
			}
			var rep advisor.Report
			if err := c.do(cmd.Context(), "GET", path, nil, &rep); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printSuggestions(s.out, &rep, all)
			return nil
		},
	}
	af.add(cmd)
	cmd.Flags().Uint64Var(&minSamples, "min-samples", 0, fmt.Sprintf("upstream exchanges an operation needs before anything is proposed (default %d)", advisor.DefaultMinSamples))
	cmd.Flags().BoolVar(&all, "all", false, "also list the settings that fit and those waiting for traffic")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the admin API's JSON")
	return cmd
}

// printSuggestions writes a report for a person.
func printSuggestions(w io.Writer, rep *advisor.Report, all bool) {
	fmt.Fprintf(w, "From the last %s of traffic (an operation needs %d upstream exchanges).\n", rep.Window, rep.MinSamples)
	held := map[string]int{}
	shown := 0
	for _, sg := range rep.Suggestions {
		quiet := sg.Action == advisor.ActionKeep || sg.Action == advisor.ActionWait
		if quiet && !all {
			held[sg.Action]++
			continue
		}
		shown++
		sg = printableSuggestion(sg)
		fmt.Fprintln(w)
		head := fmt.Sprintf("%-5s %s  %s", strings.ToUpper(sg.Action), sg.Setting, sg.Current)
		if sg.Suggested != "" {
			head += " -> " + sg.Suggested
		}
		if sg.Line > 0 {
			head += fmt.Sprintf("  (config line %d)", sg.Line)
		}
		fmt.Fprintln(w, head)
		fmt.Fprintln(w, "  "+sg.Reason)
		fmt.Fprintln(w, "  "+evidenceLine(sg))
		if sg.Patch != "" {
			fmt.Fprintf(w, "  at %s:\n", sg.Path)
			for line := range strings.Lines(sg.Patch) {
				fmt.Fprintln(w, "    "+printable(strings.TrimSuffix(line, "\n")))
			}
		}
	}
	switch {
	case len(rep.Suggestions) == 0:
		fmt.Fprintln(w, "\nNo operation that calls a backend has had traffic yet.")
	case shown == 0:
		fmt.Fprintln(w, "\nNothing to change.")
	}
	if n := held[advisor.ActionKeep] + held[advisor.ActionWait]; n > 0 {
		fmt.Fprintf(w, "\n%d more: %d that fit (keep), %d waiting for traffic (wait); --all lists them.\n",
			n, held[advisor.ActionKeep], held[advisor.ActionWait])
	}
}

func evidenceLine(sg advisor.Suggestion) string {
	e := sg.Evidence
	parts := []string{fmt.Sprintf("requests %d", e.Requests)}
	if e.Answered > 0 {
		var lat []string
		for _, q := range []struct {
			name string
			ms   float64
		}{{"p50", e.P50ms}, {"p99", e.P99ms}, {"p99.9", e.P999ms}, {"max", e.MaxMs}} {
			if q.ms > 0 {
				lat = append(lat, q.name+" "+msText(q.ms))
			}
		}
		parts = append(parts, "to the response headers: "+strings.Join(lat, " "))
	}
	if e.TimedOut > 0 {
		parts = append(parts, fmt.Sprintf("timed out %d", e.TimedOut))
	}
	if e.Limited > 0 {
		parts = append(parts, fmt.Sprintf("refused by the limit %d", e.Limited))
	}
	if e.Abandoned > 0 {
		parts = append(parts, fmt.Sprintf("given up by the client %d (longest wait %s)", e.Abandoned, msText(e.AbandonedMaxMs)))
	}
	parts = append(parts, fmt.Sprintf("busiest second %d", e.PeakRPS))
	if sg.Kind == advisor.KindConcurrency {
		parts = append(parts, fmt.Sprintf("in flight about %.2f", e.InFlight))
	}
	return strings.Join(parts, ", ")
}

func msText(ms float64) string {
	return strconv.FormatFloat(ms, 'f', -1, 64) + "ms"
}

// printableSuggestion replaces the control characters of the fields
// printed on one line: API and operation names come from the
// configuration, and a terminal would act on an escape sequence in them.
func printableSuggestion(sg advisor.Suggestion) advisor.Suggestion {
	for _, f := range []*string{&sg.Setting, &sg.Current, &sg.Suggested, &sg.Reason, &sg.Path} {
		*f = printable(*f)
	}
	return sg
}

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}
