package mailstore_test

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
)

func TestStore(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := mailstore.New(func() time.Time { return t0 })
	m := s.Ensure("Alice@contoso.test")
	if s.Ensure("alice@CONTOSO.test") != m || s.Mailbox("ALICE@contoso.test") != m || m.Address() != "Alice@contoso.test" {
		t.Fatal("mailboxes are not found by address without regard to case")
	}
	if got := m.Folders(); !reflect.DeepEqual(got, mailstore.DefaultFolders) {
		t.Fatalf("folders %q", got)
	}
	if m.Folder("inbox") == nil || m.Folder("sent items") != nil {
		t.Fatal("INBOX is case-insensitive, other names are not")
	}
	a, err := s.Append("alice@contoso.test", "inbox", []byte("Subject: a\r\n\r\nA\r\n"), []string{`\seen`}, time.Time{})
	if err != nil || a.UID != 1 || !a.Received.Equal(t0) || !a.HasFlag(mailstore.FlagSeen) || a.Folder != mailstore.Inbox || a.Size() != 17 {
		t.Fatalf("Append: %+v, %v", a, err)
	}
	b, _ := s.Append("alice@contoso.test", mailstore.Inbox, []byte("Subject: b\r\n\r\nB\r\n"), nil, t0.Add(-time.Hour))
	if b.UID != 2 || a.ID == b.ID || len(a.ID) < 20 {
		t.Fatalf("second message %+v", b)
	}
	if l, _ := s.List("alice@contoso.test", mailstore.Inbox); len(l) != 2 || l[0].ID != a.ID {
		t.Fatalf("List %+v", l)
	}
	if g, err := s.Get("alice@contoso.test", mailstore.Inbox, b.ID); err != nil || string(g.Data) != "Subject: b\r\n\r\nB\r\n" {
		t.Fatalf("Get %+v %v", g, err)
	}
	mv, err := s.Move("alice@contoso.test", mailstore.Inbox, mailstore.Archive, a.ID)
	if err != nil || mv.ID != a.ID || mv.Folder != mailstore.Archive || mv.UID != 1 {
		t.Fatalf("Move %+v %v", mv, err)
	}
	if f, err := s.Find("alice@contoso.test", a.ID); err != nil || f.Folder != mailstore.Archive {
		t.Fatalf("Find %+v %v", f, err)
	}
	if err := s.SetFlags("alice@contoso.test", mailstore.Archive, a.ID, []string{mailstore.FlagFlagged}); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Get("alice@contoso.test", mailstore.Archive, a.ID); !reflect.DeepEqual(f.Flags, []string{`\Flagged`}) {
		t.Fatalf("flags %q", f.Flags)
	}
	if n, err := s.Delete("alice@contoso.test", mailstore.Inbox, b.ID, "nope"); n != 1 || err != nil {
		t.Fatalf("Delete %d %v", n, err)
	}
	if _, err := s.Get("alice@contoso.test", mailstore.Inbox, b.ID); !errors.Is(err, mailstore.ErrNoMessage) {
		t.Fatalf("deleted message: %v", err)
	}
	for _, err := range []error{
		func() error { _, err := s.List("nobody@contoso.test", mailstore.Inbox); return err }(),
		func() error { _, err := s.List("alice@contoso.test", "Nope"); return err }(),
	} {
		if !errors.Is(err, mailstore.ErrNoMailbox) && !errors.Is(err, mailstore.ErrNoFolder) {
			t.Errorf("error %v", err)
		}
	}
	// Folders.
	if _, err := m.CreateFolder("Projects/2026"); err != nil {
		t.Fatal(err)
	}
	if m.Folder("Projects") == nil {
		t.Fatal("parent not created")
	}
	if _, err := m.CreateFolder("Projects"); !errors.Is(err, mailstore.ErrFolderExists) {
		t.Fatalf("create twice: %v", err)
	}
	if err := m.RenameFolder("Projects", "Work"); err != nil || m.Folder("Work/2026") == nil || m.Folder("Projects/2026") != nil {
		t.Fatalf("rename: %v %q", err, m.Folders())
	}
	if err := m.DeleteFolder("Work"); err != nil || m.Folder("Work/2026") != nil {
		t.Fatalf("delete: %v %q", err, m.Folders())
	}
	for _, name := range []string{"inbox", mailstore.SentItems} {
		if err := m.DeleteFolder(name); !errors.Is(err, mailstore.ErrDefaultFolder) {
			t.Errorf("delete %s: %v", name, err)
		}
		if err := m.RenameFolder(name, "X"); !errors.Is(err, mailstore.ErrDefaultFolder) {
			t.Errorf("rename %s: %v", name, err)
		}
	}
	if _, err := m.CreateFolder("bad\x00name"); !errors.Is(err, mailstore.ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	if got := s.Addresses(); !reflect.DeepEqual(got, []string{"Alice@contoso.test"}) {
		t.Errorf("Addresses %q", got)
	}
}

func TestStoreConcurrentAppends(t *testing.T) {
	s := mailstore.New(nil)
	s.Ensure("bob@contoso.test")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				s.Append("bob@contoso.test", mailstore.Inbox, []byte("x\r\n"), nil, time.Time{})
			}
		}()
	}
	wg.Wait()
	l, _ := s.List("bob@contoso.test", mailstore.Inbox)
	seen := map[uint32]bool{}
	for _, m := range l {
		seen[m.UID] = true
	}
	if len(l) != 400 || len(seen) != 400 {
		t.Fatalf("%d messages, %d distinct UIDs", len(l), len(seen))
	}
}
