package gateway_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

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

// armedGate holds the first Assign made once armed is set until open is closed (later ones pass):
// a refresh is then under way with Graph's answer in, not yet applied.
type armedGate struct {
	gateway.UIDStore
	armed   atomic.Bool
	entered chan struct{}
	open    chan struct{}
}

func (g *armedGate) Assign(ctx context.Context, mailbox, folder string, ids []string) (uint32, []uint32, error) {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.open
	}
	return g.UIDStore.Assign(ctx, mailbox, folder, ids)
}

// A change made through the gateway while a refresh is under way is not undone by that refresh's
// older answer: a STORE \Seen stays seen (sessions were told \Seen, then not, then \Seen again),
// a message moved away does not come back (review R2).
func TestRefreshKeepsChangesMadeMeanwhile(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", "read me", "move me")
	gate := &armedGate{UIDStore: l.uids, entered: make(chan struct{}), open: make(chan struct{})}
	mb := gateway.NewMailboxes(gate, gateway.Options{}).Open("daemon", l.address, l.client())
	defer mb.Close()
	f := folder(t, mb, "INBOX")
	before := subjects(t, syncNow(t, f))
	msgs, err := l.E.Store.List(l.address, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs { // Outlook flags both: the next delta round lists them, unread
		if err := l.E.Store.SetFlags(l.address, "INBOX", m.ID, []string{`\Flagged`}); err != nil {
			t.Fatal(err)
		}
	}
	gate.armed.Store(true)
	first := make(chan error, 1)
	go func() { _, err := f.Sync(ctxT(t), 0); first <- err }()
	select {
	case <-gate.entered:
	case <-ctxT(t).Done():
		t.Fatal("the refresh never reached the UID store")
	}
	read := true
	ids := map[string]string{}
	for _, m := range msgs {
		if bytes.Contains(m.Data, []byte("Subject: read me\r\n")) {
			ids["read me"] = m.ID
		} else {
			ids["move me"] = m.ID
		}
	}
	if err := f.SetFlags(ctxT(t), []string{ids["read me"]}, &read, nil); err != nil {
		t.Fatal(err)
	}
	archive := folder(t, mb, "Archive")
	if _, err := f.Move(ctxT(t), []string{ids["move me"]}, archive); err != nil {
		t.Fatal(err)
	}
	close(gate.open)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	v, err := f.Sync(ctxT(t), time.Hour) // the listing as the refresh left it
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]gateway.Message{}
	for _, m := range v.Messages {
		got[m.ID] = m
	}
	if m, ok := got[ids["read me"]]; !ok || !m.IsRead {
		t.Errorf("after a refresh that began before STORE \\Seen: present %v, read %v; want read", ok, m.IsRead)
	}
	if m, ok := got[ids["move me"]]; ok {
		t.Errorf("a message moved away during a refresh is back with UID %d (it had %d)", m.UID, before["move me"])
	}
	// Outlook's flag, in that refresh's answer too, comes with the next round (the STORE changed the
	// message after that answer).
	for _, m := range syncNow(t, f).Messages {
		if m.ID == ids["read me"] && (!m.IsRead || !m.Flagged) {
			t.Errorf("after the next refresh: read %v, flagged %v; want both", m.IsRead, m.Flagged)
		}
	}
}

// The same with a round that lists the folder whole (Graph forgot the delta state): the message
// changed meanwhile is still listed, with its UID.
func TestFullRefreshKeepsChangedMeanwhile(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", "read me")
	gate := &armedGate{UIDStore: l.uids, entered: make(chan struct{}), open: make(chan struct{})}
	mb := gateway.NewMailboxes(gate, gateway.Options{}).Open("daemon", l.address, l.client())
	defer mb.Close()
	f := folder(t, mb, "INBOX")
	before := syncNow(t, f)
	l.E.Graph.Reset() // the next round is 410, then the whole folder
	gate.armed.Store(true)
	first := make(chan error, 1)
	go func() { _, err := f.Sync(ctxT(t), 0); first <- err }()
	select {
	case <-gate.entered:
	case <-ctxT(t).Done():
		t.Fatal("the refresh never reached the UID store")
	}
	read := true
	if err := f.SetFlags(ctxT(t), []string{before.Messages[0].ID}, &read, nil); err != nil {
		t.Fatal(err)
	}
	close(gate.open)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for _, v := range []*gateway.View{mustView(t, f), syncNow(t, f)} {
		if len(v.Messages) != 1 || v.Messages[0].UID != before.Messages[0].UID || !v.Messages[0].IsRead {
			t.Fatalf("after a whole listing during STORE \\Seen: %d messages (want the one, read, UID %d)", len(v.Messages), before.Messages[0].UID)
		}
	}
}

// mustView is the folder's listing as it is, without a refresh.
func mustView(t *testing.T, f *gateway.Folder) *gateway.View {
	t.Helper()
	v, err := f.Sync(ctxT(t), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
