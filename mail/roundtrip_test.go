package mail_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/mail"
	"github.com/mailoauth/mailoauth/pop3"
	"github.com/mailoauth/mailoauth/smtp"
)

// accounts starts an in-process emulator and returns a manager over the config it writes.
func accounts(t *testing.T) *auth.Manager {
	t.Helper()
	return auth.New(emulatortest.Start(t, emulator.Options{AutoApprove: world.Alice}).Config, auth.Options{})
}

func account(t *testing.T, m *auth.Manager, name string) *auth.Account {
	t.Helper()
	a, err := m.Account(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func send(t *testing.T, a *auth.Account, env mail.Envelope, raw []byte) error {
	t.Helper()
	c, err := smtp.Dial(context.Background(), smtp.ForAccount(a))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var last int64
	s := &mail.SMTPSender{C: c, Progress: func(done, total int64) { last = done }}
	err = s.Send(context.Background(), env, raw)
	if err == nil && last != int64(len(raw)) {
		t.Errorf("progress ended at %d of %d", last, len(raw))
	}
	return err
}

// TestRoundTripSMTPToIMAPAndPOP3: what Build makes, SMTP sends, and IMAP and POP3 read back is the
// same bytes, and the attachments come out as they went in.
func TestRoundTripSMTPToIMAPAndPOP3(t *testing.T) {
	m := accounts(t)
	ctx := context.Background()
	daemon, bob := account(t, m, "daemon"), account(t, m, "daemon-bob") // daemon sends as alice
	dir := t.TempDir()
	big := make([]byte, 300<<10)
	rand.Read(big)
	bigPath := filepath.Join(dir, "Jahresbericht Grüße 日本.pdf")
	os.WriteFile(bigPath, big, 0o600)
	att, err := mail.AttachFile(bigPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mail.Build(mail.Draft{
		From: []string{daemon.Mailbox()}, To: []string{world.Bob}, Bcc: []string{"someone@external.test"},
		Subject: "Résumé — 日本語の件名", Text: "Hello Bob,\nthe report.\n", Attachments: []mail.Attachment{att},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := mail.Envelope{From: daemon.Mailbox(), To: []string{world.Bob, "someone@external.test"}}
	if err := send(t, daemon, env, raw); err != nil {
		t.Fatal(err)
	}

	check := func(via string, msg *mail.Message) {
		t.Helper()
		if !bytes.Equal(msg.Raw, raw) {
			t.Errorf("%s: the message read back differs from the one sent (%d vs %d bytes)", via, len(msg.Raw), len(raw))
		}
		if msg.Subject != "Résumé — 日本語の件名" || msg.From != world.Alice || len(msg.Attachments) != 1 {
			t.Fatalf("%s: %+v", via, msg.Summary)
		}
		if a := msg.Attachments[0]; a.Name != "Jahresbericht Grüße 日本.pdf" || !bytes.Equal(a.Data, big) || a.ContentType != "application/pdf" {
			t.Errorf("%s: attachment %q %s %d bytes", via, a.Name, a.ContentType, len(a.Data))
		}
	}

	ic, err := imap.Dial(ctx, imap.ForAccount(bob))
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	ir := &mail.IMAPReader{C: ic, Progress: func(done, total int64) { got = done }}
	list, err := ir.List(ctx, "", 10, true)
	if err != nil || len(list) != 1 {
		t.Fatalf("IMAP list: %v %+v", err, list)
	}
	s := list[0]
	if s.Subject != "Résumé — 日本語の件名" || !s.Unread || !s.HasAttachments || s.Size != int64(len(raw)) || s.From != world.Alice || len(s.To) != 1 {
		t.Errorf("IMAP summary %+v", s)
	}
	msg, err := ir.Get(ctx, s.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	check("IMAP", msg)
	if got != int64(len(raw)) {
		t.Errorf("IMAP progress ended at %d of %d", got, len(raw))
	}
	if again, _ := ir.List(ctx, "INBOX", 0, true); len(again) != 1 {
		t.Error("get marked the message read")
	}
	folders, err := ir.Folders(ctx)
	if err != nil || len(folders) < 6 || folders[0].Name != "INBOX" || folders[0].Total != 1 || folders[0].Unread != 1 {
		t.Errorf("folders: %v %+v", err, folders)
	}
	roles := map[string]string{}
	for _, f := range folders {
		roles[f.Role] = f.Name
	}
	if roles["archive"] != "Archive" || roles["sent"] != "Sent Items" || roles["trash"] != "Deleted Items" {
		t.Errorf("roles %v", roles)
	}
	if _, err := ir.Get(ctx, "1.999.SU5CT1g", ""); !errors.Is(err, mail.ErrNotFound) {
		t.Errorf("a stale id: %v", err)
	}
	if _, err := ir.Get(ctx, "garbage", ""); err == nil || !strings.Contains(err.Error(), "not an IMAP message id") {
		t.Errorf("a bad id: %v", err)
	}
	ir.Close()

	pc, err := pop3.Dial(ctx, pop3.ForAccount(bob))
	if err != nil {
		t.Fatal(err)
	}
	pr := &mail.POPReader{C: pc}
	plist, err := pr.List(ctx, "", 0, false)
	if err != nil || len(plist) != 1 || plist[0].Subject != s.Subject || !plist[0].HasAttachments {
		t.Fatalf("POP3 list: %v %+v", err, plist)
	}
	pmsg, err := pr.Get(ctx, plist[0].ID, "")
	if err != nil {
		t.Fatal(err)
	}
	check("POP3", pmsg)
	if _, err := pr.List(ctx, "", 0, true); !errors.Is(err, mail.ErrNotSupported) {
		t.Errorf("POP3 --unseen: %v", err)
	}
	if _, err := pr.Move(ctx, plist[0].ID, "Archive"); !errors.Is(err, mail.ErrNotSupported) {
		t.Errorf("POP3 move: %v", err)
	}
	pr.Close()
}

func TestRecipientRefusedSendsNothing(t *testing.T) {
	m := accounts(t)
	ctx := context.Background()
	daemon, bob := account(t, m, "daemon"), account(t, m, "daemon-bob")
	raw, _ := mail.Build(mail.Draft{From: []string{world.Alice}, To: []string{world.Bob, "nobody@contoso.test"}, Subject: "x", Text: "x"})
	err := send(t, daemon, mail.Envelope{From: world.Alice, To: []string{world.Bob, "nobody@contoso.test"}}, raw)
	var re *mail.RecipientError
	if !errors.As(err, &re) || re.Recipient != "nobody@contoso.test" || !strings.HasPrefix(re.Server, "550 5.1.10 RESOLVER.ADR.RecipientNotFound") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "nothing was sent") {
		t.Error(err)
	}
	ic, err := imap.Dial(ctx, imap.ForAccount(bob))
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if list, err := (&mail.IMAPReader{C: ic}).List(ctx, "", 0, false); err != nil || len(list) != 0 {
		t.Fatalf("bob got a message after a refused recipient: %v %d", err, len(list))
	}
}
