package main

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/bench/callgrind"
)

// printComparison merges a function's recursion copies, tells the
// runtime's search for work from the rest, and orders the functions by
// the size of their change, dropping those that did not change.
func TestPrintComparison(t *testing.T) {
	old := []callgrind.Cost{{Name: "main.a", Ir: 100}, {Name: "main.a'2", Ir: 20}, {Name: "runtime.netpoll", Ir: 50}, {Name: "main.same", Ir: 7}, {Name: "main.gone", Ir: 30}}
	new := []callgrind.Cost{{Name: "main.a", Ir: 60}, {Name: "runtime.netpoll", Ir: 90}, {Name: "main.same", Ir: 7}, {Name: "main.new", Ir: 5}, {Name: "main.x'y", Ir: 1}}
	var b strings.Builder
	printComparison(&b, old, new, 10, 0)
	want := `instructions in all, base -> this dump:
  all                                 207 ->        163  -21.3 %
  the runtime's search for work        50 ->         90
  the rest                            157 ->         73  -53.5 %
the largest changes of a function's own count:
       -60        120 ->         60  main.a
       +40         50 ->         90  runtime.netpoll (search for work)
       -30         30 ->          0  main.gone
        +5          0 ->          5  main.new
        +1          0 ->          1  main.x'y
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
