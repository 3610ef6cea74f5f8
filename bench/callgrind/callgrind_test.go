package callgrind

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
	got, err := SelfCosts(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	want := []Cost{{"main.a", 151}, {"main.b", 25}, {"runtime.morestack", 30}}
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
	_, err := SelfCosts(strings.NewReader("fn=(1) f\n3 x12\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("got %v, want an error naming line 2", err)
	}
}

// BaseName drops callgrind's recursion suffix only; SearchCost sums the
// search for work, recursion copies included.
func TestBaseNameAndSearchCost(t *testing.T) {
	for in, want := range map[string]string{"f'12": "f", "f": "f", "x'y": "x'y", "runtime.netpoll'2": "runtime.netpoll"} {
		if got := BaseName(in); got != want {
			t.Errorf("BaseName(%q) = %q, want %q", in, got, want)
		}
	}
	costs := []Cost{{"runtime.netpoll", 5}, {"runtime.netpoll'2", 7}, {"runtime.findRunnable", 11}, {"runtime.netpollblock", 100}, {"main.a", 1000}}
	if got := SearchCost(costs); got != 23 {
		t.Errorf("SearchCost = %d, want 23", got)
	}
}
