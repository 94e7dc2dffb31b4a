package imapgw

import (
	"strings"
	"testing"
	"time"
)

// LIST's pattern matching must not be exponential in the pattern's wildcards: imapserver's
// MatchList backtracks, and a program's LIST "" "a*a*a*a*a*a*a*a*a*a*a*a*b" against a folder named
// with a long run of a's (CREATE makes one) ran for hours on one core; a few sessions, every core.
func TestListPatternBounded(t *testing.T) {
	name := strings.Repeat("a", 200)
	done := make(chan bool, 1)
	go func() {
		done <- matchAny(name, "", []string{strings.Repeat("a*", 12) + "b", strings.Repeat("%a", 12) + "b"})
	}()
	select {
	case m := <-done:
		if m {
			t.Error("matched a pattern that cannot match")
		}
	case <-time.After(30 * time.Second): // microseconds when linear; hours when exponential
		t.Fatal("LIST pattern matching ran for 30 s on one 200-character folder name")
	}
	// What imapserver.MatchList answers (checked against it), and INBOX in any case.
	for _, c := range []struct {
		name, ref, pattern string
		want               bool
	}{
		{"INBOX", "", "*", true}, {"INBOX", "", "inbox", true}, {"A/B", "", "%", false}, {"A/B", "", "A/%", true},
		{"A/B", "", "*", true}, {"A/B/C", "A", "%", false}, {"A/B/C", "A", "%/C", true}, {"A/B", "", "A%", false},
		{"Archive", "", "*ch*", true}, {"Archive", "", "Arch", false}, {"A/B", "A/", "B", true}, {"A/B", "X", "/A/B", true},
		{"Sent Items", "", "Sent%", true}, {"", "", "", true}, {"A", "", "", false}, {"A", "", "%%*%", true},
	} {
		if got := matchAny(c.name, c.ref, []string{c.pattern}); got != c.want {
			t.Errorf("name %q, reference %q, pattern %q: %v, want %v", c.name, c.ref, c.pattern, got, c.want)
		}
	}
}
