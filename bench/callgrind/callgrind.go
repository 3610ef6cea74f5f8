// Package callgrind reads what the benchmark needs of valgrind's
// callgrind dumps: each function's own instruction count (SelfCosts), and
// which of those functions are the Go runtime's search for work
// (SearchForWork), whose share of a one-connection count moves with the
// timing of the run rather than with the code measured.
package callgrind

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Cost is one function's own instruction count.
type Cost struct {
	Name string
	Ir   uint64
}

// SelfCosts reads a callgrind dump (format version 1, the first event
// being Ir) and returns each function's own cost, largest first. Names
// may be compressed ("fn=(12) name" once, "(12)" after).
func SelfCosts(r io.Reader) ([]Cost, error) {
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
	out := make([]Cost, 0, len(self))
	for name, n := range self {
		out = append(out, Cost{name, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ir != out[j].Ir {
			return out[i].Ir > out[j].Ir
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// SearchForWork are the runtime's functions that look for a goroutine to
// run, and poll the network and the timers while there is none. In a
// count over requests sent one at a time they run while the gateway
// waits for its client or its backend, the longer the sooner it is done,
// so they move a build's total from run to run and between builds by
// more than small changes do.
var SearchForWork = map[string]bool{
	"runtime.findRunnable":          true,
	"runtime.stealWork":             true,
	"runtime.netpoll":               true,
	"runtime.checkTimersNoP":        true,
	"runtime.(*timers).check":       true,
	"runtime.pidleget":              true,
	"runtime.pidlegetSpinning":      true,
	"runtime.pidleput":              true,
	"runtime.runqgrab":              true,
	"runtime.runqsteal":             true,
	"runtime.globrunqget":           true,
	"runtime.globrunqgetbatch":      true,
	"runtime.wakep":                 true,
	"runtime.resetspinning":         true,
	"runtime.(*limiterEvent).start": true,
	"runtime.(*limiterEvent).stop":  true,
}

// BaseName is a function's name without callgrind's recursion suffix
// ("f'2" is f called from within a cycle of its own).
func BaseName(name string) string {
	i := strings.LastIndexByte(name, '\'')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// SearchCost returns the own instructions of costs' functions that are
// the runtime's search for work (recursion copies included).
func SearchCost(costs []Cost) uint64 {
	var n uint64
	for _, c := range costs {
		if SearchForWork[BaseName(c.Name)] {
			n += c.Ir
		}
	}
	return n
}
