package graph_test

import (
	"strings"
	"testing"
)

// TestWireReset: after Server.Reset (the emulator's reset to its scenario) a draft made through Graph
// is gone and a message's categories are forgotten, as the store's mailboxes are emptied beside it.
func TestWireReset(t *testing.T) {
	v := start(t)
	tok := v.userToken(t)
	draft := decode(t, v.do(t, "POST", "/me/messages", tok, "application/json", []byte(`{"subject":"draft before reset"}`)))
	id := appendAlice(t, v, "kept")
	if a := v.do(t, "PATCH", "/me/messages/"+id, tok, "application/json", []byte(`{"categories":["Red"]}`)); a.Status != 200 {
		t.Fatalf("PATCH: %d %s", a.Status, a.Body)
	}
	v.E.Graph.Reset()
	if a := v.do(t, "GET", "/me/messages/"+draft["id"].(string), tok, "", nil); a.Status != 404 {
		t.Errorf("the draft after Reset: %d %s", a.Status, a.Body)
	}
	list := v.do(t, "GET", "/me/mailFolders/drafts/messages", tok, "", nil)
	if list.Status != 200 || strings.Contains(string(list.Body), "draft before reset") {
		t.Errorf("Drafts after Reset: %d %s", list.Status, list.Body)
	}
	if got := decode(t, v.do(t, "GET", "/me/messages/"+id, tok, "", nil)); len(toStrings(got["categories"])) != 0 {
		t.Errorf("categories after Reset: %v", got["categories"])
	}
}
