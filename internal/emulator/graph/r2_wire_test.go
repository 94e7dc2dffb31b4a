package graph_test

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// A message moved out of a folder and back between two delta rounds is in the next round, however
// it was moved: Exchange gives a moved item a new version, and a change key never returns to an
// older value. (A replica of the gateway that did not look in between must learn of the round trip:
// another replica gave the message a new UID meanwhile.)
func TestWireDeltaMoveOutAndBack(t *testing.T) {
	v := start(t)
	tok := v.appToken(t)
	id := appendAlice(t, v, "filed and back")
	base := "/users/alice@contoso.test/mailFolders/inbox/messages/delta"
	_, deltaLink, _ := v.deltaRound(t, tok, base+"?$select=subject")
	c := v.imapLogin(t) // another program, over Exchange's IMAP
	for _, hop := range [][2]string{{"INBOX", "Archive"}, {"Archive", "INBOX"}} {
		if _, err := c.Select(hop[0], nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Move(imap.SeqSetNum(1), hop[1]).Wait(); err != nil {
			t.Fatalf("MOVE %s to %s: %v", hop[0], hop[1], err)
		}
	}
	entries, _, _ := v.deltaRound(t, tok, deltaLink)
	if len(entries) != 1 || entries[0]["id"] != id || entries[0]["@removed"] != nil {
		t.Fatalf("the round after a move out and back: %v, want the message as changed", entries)
	}
}
