package main

import (
	"strings"
	"testing"
)

// A dump shaped like the benchmark's: compressed names defined once and
// referred to by number, relative positions, and a call that callgrind
// thinks never returned (morestack), whose inclusive cost is the whole
// program's and must not count as anyone's own.
const dump = `# callgrind format
version: 1
events: Ir
summary: 1000

ob=(1) /tmp/gatehouse
fl=(1) /src/a.go
fn=(10) main.a
5 100
+1 50
cfn=(11) runtime.morestack
calls=0 0
* 1000

fn=(11)
0 30

fl=(2) /src/b.go
fn=(12) main.b
cfn=(10)
calls=2 5
7 150
-2 20
*  5

fn=(10)
9 1
`

func TestSelfCosts(t *testing.T) {
	got, err := selfCosts(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	want := []cost{{"main.a", 151}, {"main.b", 25}, {"runtime.morestack", 30}}
	// sorted by cost
	want[1], want[2] = want[2], want[1]
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %v, want %v", got, want)
			break
		}
	}
}

func TestSelfCostsBadCost(t *testing.T) {
	_, err := selfCosts(strings.NewReader("fn=(1) f\n3 x12\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("got %v, want an error naming line 2", err)
	}
}

// printComparison merges a function's recursion copies, tells the
// runtime's search for work from the rest, and orders the functions by
// the size of their change, dropping those that did not change.
func TestPrintComparison(t *testing.T) {
	old := []cost{{"main.a", 100}, {"main.a'2", 20}, {"runtime.netpoll", 50}, {"main.same", 7}, {"main.gone", 30}}
	new := []cost{{"main.a", 60}, {"runtime.netpoll", 90}, {"main.same", 7}, {"main.new", 5}, {"main.x'y", 1}}
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
	if got := baseName("f'12"); got != "f" {
		t.Errorf("baseName(f'12) = %q", got)
	}
}
