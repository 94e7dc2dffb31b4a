package auth_test

import (
	"context"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// An account with neither Mailbox nor Email opens the mailbox of its one signed-in user, the one
// its Token serves: IMAP signs in as her after her sign-in, in this process and the next; with two
// users and nothing naming one there is no mailbox, as there is no token; with one removed, the
// other's again.
func TestMailboxOfTheOneUser(t *testing.T) {
	e := webEnv(t)
	ctx := context.Background()
	app := e.webAccount(t)
	if m := app.Mailbox(); m != "" {
		t.Fatalf("mailbox before any sign-in: %q", m)
	}
	e.webSignIn(t, app, world.Alice, "alice-password", auth.AuthCodeOptions{})
	if m := app.Mailbox(); m != world.Alice {
		t.Fatalf("mailbox after alice's sign-in: %q", m)
	}
	c, err := imap.Dial(ctx, imap.ForAccount(app))
	if err != nil {
		t.Fatalf("IMAP for the account after alice's sign-in: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if m := e.webAccount(t).Mailbox(); m != world.Alice {
		t.Fatalf("mailbox in the next process: %q", m)
	}

	bob := e.webSignIn(t, app, world.Bob, "bob-password", auth.AuthCodeOptions{})
	if m := app.Mailbox(); m != "" {
		t.Fatalf("mailbox with alice and bob signed in: %q, want none (Token picks neither)", m)
	}
	if err := app.RemoveUser(ctx, bob.User.HomeAccountID); err != nil {
		t.Fatal(err)
	}
	if m := app.Mailbox(); m != world.Alice {
		t.Fatalf("mailbox after bob's removal: %q", m)
	}
}
