package gateway_test

import (
	"testing"

	"github.com/mailoauth/mailoauth/gateway"
)

// Two proxies over one UID store (a fleet): a message another program moved away and back while
// only one of them looked has one UID in both (review R2; the emulator kept the message's old
// changeKey, so the other replica never heard of the round trip).
func TestReplicasAgreeAfterMoveAndBack(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", "one", "two")
	p1 := folder(t, l.open(t, gateway.Options{}), "INBOX")
	p2 := folder(t, l.open(t, gateway.Options{}), "INBOX")
	s1, s2 := subjects(t, syncNow(t, p1)), subjects(t, syncNow(t, p2))
	if s1["one"] != s2["one"] {
		t.Fatalf("the replicas differ at once: %v and %v", s1, s2)
	}
	msgs, err := l.E.Store.List(l.address, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.E.Store.Move(l.address, "INBOX", "Archive", msgs[0].ID); err != nil {
		t.Fatal(err)
	}
	s1 = subjects(t, syncNow(t, p1)) // replica 1 sees it gone: its UID is forgotten
	if _, err := l.E.Store.Move(l.address, "Archive", "INBOX", msgs[0].ID); err != nil {
		t.Fatal(err)
	}
	s1, s2 = subjects(t, syncNow(t, p1)), subjects(t, syncNow(t, p2))
	if s1["one"] != s2["one"] {
		t.Errorf("message one has UID %d through replica 1 and %d through replica 2 (%v, %v): a program syncing through either sees it twice", s1["one"], s2["one"], s1, s2)
	}
}
