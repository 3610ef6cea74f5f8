package dashboard

import "strings"

// A line diff (Myers' O(ND) algorithm) for comparing configuration
// versions.

// DiffOp says what happened to a line.
type DiffOp byte

// The diff operations.
const (
	Same   DiffOp = ' '
	Delete DiffOp = '-'
	Insert DiffOp = '+'
)

// DiffLine is one line of a diff, with its number in the old and new text
// (0 when it is not in that text).
type DiffLine struct {
	Op       DiffOp
	Old, New int
	Text     string
	// IsFold marks a line that stands for Skipped unchanged lines.
	IsFold  bool
	Skipped int
}

// maxEdits bounds the work on very different texts; past it the diff
// is "everything removed, everything added".
const maxEdits = 4000

// Diff returns the line diff from a to b.
func Diff(a, b string) []DiffLine {
	x, y := splitLines(a), splitLines(b)
	n, m := len(x), len(y)
	max := n + m
	off := max + 1
	v := make([]int, 2*max+2)
	var trace [][]int
	found := false
	for d := 0; d <= max && d <= maxEdits; d++ {
		trace = append(trace, append([]int(nil), v...))
		for k := -d; k <= d; k += 2 {
			var i int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				i = v[off+k+1]
			} else {
				i = v[off+k-1] + 1
			}
			j := i - k
			for i < n && j < m && x[i] == y[j] {
				i++
				j++
			}
			v[off+k] = i
			if i >= n && j >= m {
				found = true
				break
			}
		}
		if found {
			break
		}
	}
	if !found {
		out := make([]DiffLine, 0, n+m)
		for i, s := range x {
			out = append(out, DiffLine{Op: Delete, Old: i + 1, Text: s})
		}
		for j, s := range y {
			out = append(out, DiffLine{Op: Insert, New: j + 1, Text: s})
		}
		return out
	}
	// Walk back through the trace.
	var rev []DiffLine
	i, j := n, m
	for d := len(trace) - 1; d >= 0 && (i > 0 || j > 0); d-- {
		vd := trace[d]
		k := i - j
		var pk int
		if k == -d || (k != d && vd[off+k-1] < vd[off+k+1]) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		pi := vd[off+pk]
		pj := pi - pk
		for i > pi && j > pj {
			rev = append(rev, DiffLine{Op: Same, Old: i, New: j, Text: x[i-1]})
			i--
			j--
		}
		if d == 0 {
			break
		}
		if i == pi {
			rev = append(rev, DiffLine{Op: Insert, New: j, Text: y[j-1]})
		} else {
			rev = append(rev, DiffLine{Op: Delete, Old: i, Text: x[i-1]})
		}
		i, j = pi, pj
	}
	for i > 0 && j > 0 {
		rev = append(rev, DiffLine{Op: Same, Old: i, New: j, Text: x[i-1]})
		i--
		j--
	}
	out := make([]DiffLine, len(rev))
	for k := range rev {
		out[k] = rev[len(rev)-1-k]
	}
	return out
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// Fold keeps context lines around each change and replaces longer runs of
// unchanged lines with one fold line.
func Fold(lines []DiffLine, context int) []DiffLine {
	keep := make([]bool, len(lines))
	for i, l := range lines {
		if l.Op == Same {
			continue
		}
		for k := max(0, i-context); k <= min(len(lines)-1, i+context); k++ {
			keep[k] = true
		}
	}
	var out []DiffLine
	for i := 0; i < len(lines); {
		if keep[i] {
			out = append(out, lines[i])
			i++
			continue
		}
		j := i
		for j < len(lines) && !keep[j] {
			j++
		}
		out = append(out, DiffLine{IsFold: true, Skipped: j - i, Old: lines[i].Old, New: lines[i].New})
		i = j
	}
	return out
}

// DiffStats counts added and removed lines.
func DiffStats(lines []DiffLine) (added, removed int) {
	for _, l := range lines {
		switch l.Op {
		case Insert:
			added++
		case Delete:
			removed++
		}
	}
	return added, removed
}
