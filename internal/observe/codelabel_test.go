package observe

import "testing"

// A status a backend made up gets its class as the code label, so that
// an operation's series stay few; registered codes and 499 keep theirs.
func TestCodeLabel(t *testing.T) {
	for code, want := range map[int]string{
		200: "200", 204: "204", 418: "418", 429: "429", 499: "499", 503: "503",
		299: "2xx", 420: "4xx", 599: "5xx", 600: "6xx", 999: "9xx", 1000: "other", 42: "other",
	} {
		if got := codeLabel(code); got != want {
			t.Errorf("codeLabel(%d) = %q, want %q", code, got, want)
		}
	}
}
