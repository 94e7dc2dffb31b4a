package gateway_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// A COPY that Graph refuses half way leaves the destination as it was (RFC 3501 section 6.4.7:
// "If the COPY command is unsuccessful for any reason, server implementations MUST restore the
// destination mailbox to its state before the COPY attempt"): a program told NO copies again, and
// the copies made before the refusal would be there twice.
func TestCopyRefusedHalfWayCopiesNothing(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", "c1", "c2", "c3")
	mb := l.open(t, gateway.Options{})
	ctx := ctxT(t)
	if err := mb.CreateFolder(ctx, "Dest"); err != nil {
		t.Fatal(err)
	}
	inbox, dest := folder(t, mb, "INBOX"), folder(t, mb, "Dest")
	syncNow(t, dest)
	var ids []string
	for _, m := range syncNow(t, inbox).Messages {
		ids = append(ids, m.ID)
	}
	// The first copy goes through, the next two are refused (403: not retried), then Graph answers.
	if err := l.E.Live.Update(func(w *world.World) error {
		w.Faults = append(w.Faults, world.Fault{Endpoint: "graph", Status: 403, After: 1, Times: 2})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := inbox.Copy(ctx, ids, dest); err == nil {
		t.Fatal("Copy succeeded through two refusals")
	}
	for _, s := range []string{"c1", "c2", "c3"} {
		if w := l.where(t, s); len(w) != 1 || w[0] != "INBOX" {
			t.Errorf("%s is in %v after a refused Copy; want [INBOX] (nothing copied)", s, w)
		}
	}
}

// A program asking again and again for a folder that does not exist (a client polling a folder
// deleted elsewhere, or a loop) must not list the folder tree from Graph each time: Graph's
// per-mailbox budget (10,000 requests in 10 minutes) is shared with every other session of the
// mailbox and with its SMTP submissions.
func TestMissingFolderDoesNotHammerGraph(t *testing.T) {
	l := newLab(t)
	mb := l.open(t, gateway.Options{})
	ctx := ctxT(t)
	if _, err := mb.Folders(ctx); err != nil { // the tree, and the well-known folders, once
		t.Fatal(err)
	}
	n := l.requests(func() {
		for range 50 {
			if _, err := mb.Folder(ctx, "No such folder"); !errors.Is(err, gateway.ErrNoFolder) {
				t.Fatalf("Folder of a missing name: %v, want ErrNoFolder", err)
			}
		}
	})
	if n > 10 {
		t.Errorf("50 lookups of a missing folder within a few seconds cost %d Graph requests; want the tree asked for at most a few times", n)
	}
}

// A message the user filed elsewhere after the folder was listed is not deleted by a POP3 DELE or
// an IMAP EXPUNGE of the old listing: ids are immutable, and a real server's maildrop no longer
// has it. Only the messages still in the folder go. (From review R2.)
func TestDeleteSkipsMovedAway(t *testing.T) {
	l := newLab(t)
	l.deliver(t, "INBOX", "filed", "junk")
	f := folder(t, l.open(t, gateway.Options{}), "INBOX")
	syncNow(t, f)
	msgs, err := l.E.Store.List(l.address, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	if _, err := l.E.Store.Move(l.address, "INBOX", "Archive", msgs[0].ID); err != nil {
		t.Fatal(err) // the user files the first message in Outlook
	}
	if err := f.Delete(ctxT(t), ids); err != nil {
		t.Fatal(err)
	}
	if w := l.where(t, "filed"); fmt.Sprint(w) != "[Archive]" {
		t.Errorf("the message filed in Archive after the listing is now in %v", w)
	}
	if w := l.where(t, "junk"); fmt.Sprint(w) != "[Deleted Items]" {
		t.Errorf("the deleted message is in %v", w)
	}
}
