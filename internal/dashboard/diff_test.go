package dashboard

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// apply rebuilds both texts from a diff.
func apply(lines []DiffLine) (string, string) {
	var a, b []string
	for _, l := range lines {
		if l.Op != Insert {
			a = append(a, l.Text)
		}
		if l.Op != Delete {
			b = append(b, l.Text)
		}
	}
	return strings.Join(a, "\n"), strings.Join(b, "\n")
}

func TestDiff(t *testing.T) {
	cases := []struct {
		name, a, b   string
		added, remov int
	}{
		{"equal", "a\nb\nc", "a\nb\nc", 0, 0},
		{"empty to text", "", "a\nb", 2, 0},
		{"text to empty", "a\nb", "", 0, 2},
		{"one changed line", "a\nb\nc", "a\nB\nc", 1, 1},
		{"insert in middle", "a\nc", "a\nb\nc", 1, 0},
		{"delete at start", "x\na\nb", "a\nb", 0, 1},
		{"trailing newline ignored", "a\nb\n", "a\nb", 0, 0},
		{"myers paper example, D=5", "a\nb\nc\na\nb\nb\na", "c\nb\na\nb\na\nc", 2, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Diff(c.a, c.b)
			add, rem := DiffStats(d)
			if add != c.added || rem != c.remov {
				t.Errorf("+%d -%d, want +%d -%d", add, rem, c.added, c.remov)
			}
			a, b := apply(d)
			if a != strings.TrimSuffix(c.a, "\n") || b != strings.TrimSuffix(c.b, "\n") {
				t.Errorf("diff does not rebuild the texts: %q %q", a, b)
			}
		})
	}
}

func TestDiff_RebuildsRandomTexts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "b", "c", "d"}
	gen := func() string {
		n := r.IntN(30)
		var out []string
		for range n {
			out = append(out, words[r.IntN(len(words))])
		}
		return strings.Join(out, "\n")
	}
	for range 500 {
		x, y := gen(), gen()
		d := Diff(x, y)
		a, b := apply(d)
		if a != x || b != y {
			t.Fatalf("diff of %q and %q rebuilds %q and %q", x, y, a, b)
		}
		for _, l := range d {
			if l.Op == Same && (l.Old == 0 || l.New == 0) {
				t.Fatalf("unchanged line without numbers: %+v", l)
			}
		}
	}
}

func TestFold_KeepsContextAroundChanges(t *testing.T) {
	var a []string
	for i := range 40 {
		a = append(a, string(rune('A'+i%26)))
	}
	b := append([]string(nil), a...)
	b[20] = "changed"
	f := Fold(Diff(strings.Join(a, "\n"), strings.Join(b, "\n")), 3)
	var folds, shown int
	for _, l := range f {
		if l.IsFold {
			folds++
		} else {
			shown++
		}
	}
	if folds != 2 || shown != 8 {
		t.Errorf("folds %d, shown %d; want 2 folds and 3+2+3 lines", folds, shown)
	}
}
