package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/graph"
)

// A "/" inside a display name must not read as a level of the hierarchy, and comes back as "/"
// when a program uses the name.
func TestTreeNames(t *testing.T) {
	const root = "root-id"
	tr := buildTree([]graph.Folder{
		{ID: "i", DisplayName: "Inbox", ParentFolderID: root, WellKnownName: "inbox", ChildFolderCount: 1},
		{ID: "s", DisplayName: "Sent Items", ParentFolderID: root, WellKnownName: "sentitems"},
		{ID: "r", DisplayName: "Q1/Q2 reports", ParentFolderID: "i", ChildFolderCount: 1},
		{ID: "x", DisplayName: "2026", ParentFolderID: "r"},
		{ID: "a", DisplayName: "and/or", ParentFolderID: root},
	})
	var got []string
	for _, f := range tr.list {
		got = append(got, f.Name+"|"+f.SpecialUse)
	}
	want := "[INBOX| INBOX/Q1∕Q2 reports| INBOX/Q1∕Q2 reports/2026| Sent Items|\\Sent and∕or|]"
	if fmt.Sprint(got) != want {
		t.Fatalf("tree %v\nwant %s", got, want)
	}
	parent, leaf := splitName(canonical("inbox/Q1∕Q2 reports/2026/"))
	if parent != "INBOX/Q1∕Q2 reports" || unescapeName(leaf) != "2026" || unescapeName("Q1∕Q2 reports") != "Q1/Q2 reports" {
		t.Fatalf("split %q %q", parent, leaf)
	}
}

// Mailboxes keeps a mailbox while it is used and only a bounded number of idle ones.
func TestMailboxesBounded(t *testing.T) {
	ms := NewMailboxes(nil, Options{})
	a := ms.Open("acct", "Alice@contoso.test", nil)
	if b := ms.Open("acct", "alice@CONTOSO.test", nil); b != a {
		t.Fatal("two sessions of one mailbox got two Mailboxes")
	}
	if o := ms.Open("other-acct", "alice@contoso.test", nil); o == a {
		t.Fatal("another account's session got the same Mailbox")
	}
	if a.Options.PollInterval != DefaultPollInterval || a.Options.MaxMessage != DefaultMaxMessage {
		t.Fatalf("defaults: %+v", a.Options)
	}
	for i := range 3 * maxIdleMailboxes {
		m := ms.Open("acct", fmt.Sprintf("user%d@contoso.test", i), nil)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // one Close for each of the two Opens
		if err := a.Close(); err != nil {
			t.Fatal("Close of the two Opens failed:", err)
		}
	}
	if err := a.Close(); err == nil {
		t.Fatal("a third Close of two Opens succeeded")
	}
	ms.mu.Lock()
	n, idle := len(ms.open), ms.idle.Len()
	ms.mu.Unlock()
	// 64 idle ones, and other-acct's still open.
	if idle != maxIdleMailboxes || n != maxIdleMailboxes+1 {
		t.Fatalf("%d mailboxes kept, %d idle; want %d idle and one in use", n, idle, maxIdleMailboxes)
	}
	// The most recently closed is still warm; the oldest idle ones are gone.
	if ms.Open("acct", "alice@contoso.test", nil) != a {
		t.Fatal("the most recently closed mailbox was dropped")
	}
}

// A Mailbox made by hand (a test's, or a tool's) works: UIDs in memory, folders opened.
func TestMailboxByHand(t *testing.T) {
	m := &Mailbox{}
	st := newFolderState(m, FolderInfo{ID: "f"})
	if m.uidStore() == nil || st.m.opts().PollInterval != DefaultPollInterval {
		t.Fatal("a Mailbox without Mailboxes has no UID store or no defaults")
	}
	m.tree = buildTree([]graph.Folder{{ID: "i", DisplayName: "Inbox", WellKnownName: "inbox"}})
	m.tree.at = time.Now()
	f, err := m.Folder(context.Background(), "Inbox")
	if err != nil || f.Info.ID != "i" {
		t.Fatalf("Folder: %+v, %v", f, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
