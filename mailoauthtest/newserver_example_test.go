package mailoauthtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/mailoauthtest"
	"github.com/mailoauth/mailoauth/smtp"
	"github.com/mailoauth/mailoauth/token"
)

// notify is a program's own code under test: it mails an alert with whatever account it is given.
// Taking a token.Account rather than building one lets a test hand it an account of the Server.
func notify(ctx context.Context, acc token.Account, to, subject string) error {
	c, err := smtp.Dial(ctx, smtp.ForAccount(acc))
	if err != nil {
		return err
	}
	defer c.Close()
	msg := "From: " + acc.Mailbox() + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nSee the dashboard.\r\n"
	if err := c.SendMail(acc.Mailbox(), []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// TestNotify is how a program's test uses the package (the shape the package documentation shows):
// NewServer starts a Server for the test and closes it when the test ends; one of its ready
// accounts goes to the code under test; Messages shows what arrived.
func TestNotify(t *testing.T) {
	t.Parallel()
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{})
	daemon, err := auth.NewAccount(srv.Account("daemon"), auth.Options{}) // opens alice's mailbox
	if err != nil {
		t.Fatal(err)
	}

	if err := notify(t.Context(), daemon, "bob@contoso.test", "Disk 91% full"); err != nil {
		t.Fatal(err)
	}

	msgs, err := srv.Messages("bob@contoso.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Folder != mailoauthtest.Inbox || msgs[0].Subject != "Disk 91% full" {
		t.Fatalf("bob's mailbox holds %+v, want the alert in %s", msgs, mailoauthtest.Inbox)
	}
	if !strings.Contains(string(msgs[0].Data), "From: alice@contoso.test") {
		t.Errorf("the alert is not from alice@contoso.test, the mailbox the account opens:\n%s", msgs[0].Data)
	}
}
