package gateway_test

import (
	"testing"

	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/graph"
)

// TestOpenWithMakesOneClient: logins to a mailbox already open make no client of their own (the
// proxy made a graph client, with its transport and Limiter, at every login), and a Mailbox made
// again after it was dropped gets a new one.
func TestOpenWithMakesOneClient(t *testing.T) {
	ms := gateway.NewMailboxes(nil, gateway.Options{})
	made := 0
	client := func() *graph.Client { made++; return graph.New(graph.Options{}) }
	a := ms.OpenWith("acct", "alice@contoso.test", client)
	b := ms.OpenWith("acct", "ALICE@contoso.test", client)
	if a != b || made != 1 || a.Graph == nil {
		t.Fatalf("two logins to one mailbox: same Mailbox %v, %d clients made, client %v; want the same, 1", a == b, made, a.Graph)
	}
	if c := ms.OpenWith("other", "alice@contoso.test", client); c == a || made != 2 {
		t.Fatalf("another account's login: %d clients made, want 2", made)
	}
}
