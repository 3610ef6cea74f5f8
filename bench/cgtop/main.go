// Command cgtop prints where the instructions of a callgrind dump went:
// each function's own count (calls to other functions excluded), largest
// first, per request when -requests is given.
//
//	go run ./bench -instructions 2000 -profile /tmp/cg
//	go run ./bench/cgtop -requests 2000 /tmp/cg/callgrind.gatehouse-passthrough.out
//
// With -base OLD_DUMP it compares two dumps instead (two builds counted
// over the same requests, say): the totals, with and without the
// runtime's search for work (callgrind.SearchForWork), and the functions
// whose own count changed most, a function's recursion copies (name'2)
// counted as one.
//
//	go run ./bench/cgtop -requests 20000 -base /tmp/cg/callgrind.baseline-passthrough.out /tmp/cg/callgrind.gatehouse-passthrough.out
//
// callgrind_annotate misreads the dumps of Go programs: a goroutine's
// stack switch (morestack) looks to callgrind like a call that never
// returns, and the annotator puts nearly the whole cost on one function.
// Summing each function's own cost lines, as this does, is unaffected.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/gatehouse-dev/gatehouse/bench/callgrind"
)

func main() {
	top := flag.Int("top", 40, "functions to print")
	requests := flag.Int("requests", 0, "also print instructions per request, over this many requests")
	base := flag.String("base", "", "a dump to compare CALLGRIND_FILE with, function by function")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: cgtop [-top N] [-requests N] [-base OLD_CALLGRIND_FILE] CALLGRIND_FILE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	costs, err := readCosts(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cgtop:", err)
		os.Exit(1)
	}
	if *base != "" {
		old, err := readCosts(*base)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cgtop:", err)
			os.Exit(1)
		}
		printComparison(os.Stdout, old, costs, *top, *requests)
		return
	}
	var total uint64
	for _, c := range costs {
		total += c.Ir
	}
	fmt.Printf("%d instructions in all", total)
	if *requests > 0 {
		fmt.Printf(", %.0f per request", float64(total)/float64(*requests))
	}
	fmt.Println()
	for i, c := range costs {
		if i == *top {
			break
		}
		fmt.Printf("%12d %6.2f%%", c.Ir, 100*float64(c.Ir)/float64(max(total, 1)))
		if *requests > 0 {
			fmt.Printf(" %8.0f/req", float64(c.Ir)/float64(*requests))
		}
		fmt.Printf("  %s\n", c.Name)
	}
}

// readCosts reads the callgrind dump in file (callgrind.SelfCosts).
func readCosts(file string) ([]callgrind.Cost, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	costs, err := callgrind.SelfCosts(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return costs, nil
}

// printComparison writes the totals of old and new, with and without
// the search for work, and the top functions by the change of their own
// count, largest first, per request when requests > 0.
func printComparison(w io.Writer, old, new []callgrind.Cost, top, requests int) {
	merge := func(cs []callgrind.Cost) map[string]uint64 {
		m := map[string]uint64{}
		for _, c := range cs {
			m[callgrind.BaseName(c.Name)] += c.Ir
		}
		return m
	}
	a, b := merge(old), merge(new)
	per := func(n float64) float64 {
		if requests > 0 {
			return n / float64(requests)
		}
		return n
	}
	var ta, tb, sa, sb float64
	for name, n := range a {
		ta += float64(n)
		if callgrind.SearchForWork[name] {
			sa += float64(n)
		}
	}
	for name, n := range b {
		tb += float64(n)
		if callgrind.SearchForWork[name] {
			sb += float64(n)
		}
	}
	change := func(x, y float64) string {
		if x == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%+.1f %%", 100*(y/x-1))
	}
	unit := "instructions in all"
	if requests > 0 {
		unit = fmt.Sprintf("instructions per request (over %d)", requests)
	}
	fmt.Fprintf(w, "%s, base -> this dump:\n", unit)
	fmt.Fprintf(w, "  all                          %10.0f -> %10.0f  %s\n", per(ta), per(tb), change(ta, tb))
	fmt.Fprintf(w, "  the runtime's search for work %9.0f -> %10.0f\n", per(sa), per(sb))
	fmt.Fprintf(w, "  the rest                     %10.0f -> %10.0f  %s\n", per(ta-sa), per(tb-sb), change(ta-sa, tb-sb))
	type delta struct {
		name     string
		old, new uint64
	}
	var ds []delta
	for name, n := range a {
		ds = append(ds, delta{name, n, b[name]})
	}
	for name, n := range b {
		if _, ok := a[name]; !ok {
			ds = append(ds, delta{name, 0, n})
		}
	}
	diff := func(d delta) float64 { return float64(d.new) - float64(d.old) }
	sort.Slice(ds, func(i, j int) bool {
		di, dj := diff(ds[i]), diff(ds[j])
		if di < 0 {
			di = -di
		}
		if dj < 0 {
			dj = -dj
		}
		if di != dj {
			return di > dj
		}
		return ds[i].name < ds[j].name
	})
	if top <= 0 {
		return
	}
	fmt.Fprintf(w, "the largest changes of a function's own count:\n")
	for i, d := range ds {
		if i == top || d.old == d.new {
			break
		}
		mark := ""
		if callgrind.SearchForWork[d.name] {
			mark = " (search for work)"
		}
		fmt.Fprintf(w, "%+10.0f %10.0f -> %10.0f  %s%s\n", per(diff(d)), per(float64(d.old)), per(float64(d.new)), d.name, mark)
	}
}
