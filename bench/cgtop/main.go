// Command cgtop prints where the instructions of a callgrind dump went:
// each function's own count (calls to other functions excluded), largest
// first, per request when -requests is given.
//
//	go run ./bench -instructions 2000 -profile /tmp/cg
//	go run ./bench/cgtop -requests 2000 /tmp/cg/callgrind.gatehouse-passthrough.out
//
// callgrind_annotate misreads the dumps of Go programs: a goroutine's
// stack switch (morestack) looks to callgrind like a call that never
// returns, and the annotator puts nearly the whole cost on one function.
// Summing each function's own cost lines, as this does, is unaffected.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

func main() {
	top := flag.Int("top", 40, "functions to print")
	requests := flag.Int("requests", 0, "also print instructions per request, over this many requests")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: cgtop [-top N] [-requests N] CALLGRIND_FILE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cgtop:", err)
		os.Exit(1)
	}
	defer f.Close()
	costs, err := selfCosts(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cgtop:", err)
		os.Exit(1)
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

// cost is one function's own instruction count.
type cost struct {
	Name string
	Ir   uint64
}

// selfCosts reads a callgrind dump (format version 1, the first event
// being Ir) and returns each function's own cost, largest first. Names
// may be compressed ("fn=(12) name" once, "(12)" after).
func selfCosts(r io.Reader) ([]cost, error) {
	names := map[string]string{}
	self := map[string]uint64{}
	resolve := func(spec string) string {
		spec = strings.TrimSpace(spec)
		if !strings.HasPrefix(spec, "(") {
			return spec
		}
		end := strings.IndexByte(spec, ')')
		if end < 0 {
			return spec
		}
		id, name := spec[:end+1], strings.TrimSpace(spec[end+1:])
		if name != "" {
			names[id] = name
			return name
		}
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	fn := ""
	skipNext := false // the line after calls= is the call's inclusive cost
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "fn="):
			fn = resolve(l[3:])
			continue
		case strings.HasPrefix(l, "cfn="):
			resolve(l[4:]) // it may define a name used later
			continue
		case strings.HasPrefix(l, "calls="):
			skipNext = true
			continue
		}
		if l == "" || !(l[0] == '+' || l[0] == '-' || l[0] == '*' || l[0] >= '0' && l[0] <= '9') {
			continue
		}
		if skipNext {
			skipNext = false
			continue
		}
		fields := strings.Fields(l)
		if len(fields) < 2 || fn == "" {
			continue
		}
		n, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: cost %q: %v", line, fields[1], err)
		}
		self[fn] += n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]cost, 0, len(self))
	for name, n := range self {
		out = append(out, cost{name, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ir != out[j].Ir {
			return out[i].Ir > out[j].Ir
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
