package mail_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/mail"
	"github.com/mailoauth/mailoauth/mail/graphmail"
	"github.com/mailoauth/mailoauth/pop3"
)

// TestRoundTripEveryPairBigAttachment: a message with a 3.5 MB attachment held in memory (over Graph's
// 3 MB inline limit, so Graph sends it through an upload session) and a non-ASCII subject and file name, sent once
// over SMTP and once over Graph, read back by each of IMAP, POP3 and Graph: six pairs, the attachment
// byte-identical and its name and the subject unchanged in all of them.
func TestRoundTripEveryPairBigAttachment(t *testing.T) {
	m := accounts(t)
	ctx := context.Background()
	daemon, bob := account(t, m, "daemon"), account(t, m, "daemon-bob") // daemon sends as alice

	const name = "Präsentation — 年次報告 Ünïcødé.pdf"
	big := make([]byte, 3<<20+512<<10)
	rand.Read(big)
	subjects := map[string]string{
		"SMTP":  "Großer Anhang über SMTP — 大きな添付ファイル",
		"Graph": "Großer Anhang über Graph — 大きな添付ファイル",
	}
	draft := func(via string) mail.Draft {
		return mail.Draft{From: []string{daemon.Mailbox()}, To: []string{world.Bob}, Subject: subjects[via],
			Text: "Hello Bob,\nthe big one, sent over " + via + ".\n", Attachments: []mail.Attachment{{Name: name, ContentType: "application/pdf", Data: big}}}
	}

	// Send over SMTP and over Graph at once (the race detector makes every pass over 3.5 MB slow; two
	// cores). The Graph client's progress is only told about attachments that go through an upload
	// session, so its reaching the attachment's size proves the session was used.
	raw, err := mail.Build(draft("SMTP"))
	if err != nil {
		t.Fatal(err)
	}
	var smtpErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		smtpErr = send(t, daemon, mail.Envelope{From: daemon.Mailbox(), To: []string{world.Bob}}, raw)
	}()
	gc := graph.ForAccount(daemon)
	var uploaded, uploadTotal int64
	var calls int
	gc.Progress = func(sent, total int64) { uploaded, uploadTotal = sent, total; calls++ }
	graphErr := graphmail.Send(ctx, gc, draft("Graph"))
	<-done
	if smtpErr != nil || graphErr != nil {
		t.Fatalf("send: SMTP: %v; Graph: %v", smtpErr, graphErr)
	}
	if uploaded != int64(len(big)) || uploadTotal != int64(len(big)) || calls < 2 {
		t.Errorf("Graph upload session: progress ended at %d of %d after %d chunks; want %d in at least 2 chunks (3 MB each)",
			uploaded, uploadTotal, calls, len(big))
	}

	// Read both back every way as bob, the three readers at once.
	readers := []struct {
		name string
		open func() (mail.Reader, error)
	}{
		{"IMAP", func() (mail.Reader, error) {
			c, err := imap.Dial(ctx, imap.ForAccount(bob))
			if err != nil {
				return nil, err
			}
			return &mail.IMAPReader{C: c}, nil
		}},
		{"POP3", func() (mail.Reader, error) {
			c, err := pop3.Dial(ctx, pop3.ForAccount(bob))
			if err != nil {
				return nil, err
			}
			return &mail.POPReader{C: c}, nil
		}},
		{"Graph", func() (mail.Reader, error) { return &graphmail.Reader{C: graph.ForAccount(bob)}, nil }},
	}
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			t.Parallel()
			r, err := rd.open()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			readBack(t, r, rd.name, subjects, raw, name, big)
		})
	}
}

// readBack finds the two messages in r's inbox and checks them.
func readBack(t *testing.T, r mail.Reader, reader string, subjects map[string]string, raw []byte, name string, big []byte) {
	t.Helper()
	ctx := context.Background()
	list, err := r.List(ctx, "", 0, false)
	if err != nil {
		t.Fatalf("%s list: %v", reader, err)
	}
	bySubject := map[string]mail.Summary{}
	for _, s := range list {
		bySubject[s.Subject] = s
	}
	for _, via := range []string{"SMTP", "Graph"} {
		pair := via + " → " + reader
		s, ok := bySubject[subjects[via]]
		if !ok {
			t.Errorf("%s: no message with subject %q among %d", pair, subjects[via], len(list))
			continue
		}
		if !s.HasAttachments {
			t.Errorf("%s: the summary says no attachments: %+v", pair, s)
		}
		msg, err := r.Get(ctx, s.ID, "")
		if err != nil {
			t.Errorf("%s: get: %v", pair, err)
			continue
		}
		if msg.Subject != subjects[via] {
			t.Errorf("%s: subject %q, want %q", pair, msg.Subject, subjects[via])
		}
		if via == "SMTP" && !bytes.Equal(msg.Raw, raw) {
			t.Errorf("%s: the message read back differs from the one sent (%d vs %d bytes)", pair, len(msg.Raw), len(raw))
		}
		if len(msg.Attachments) != 1 {
			t.Errorf("%s: %d attachments, want 1", pair, len(msg.Attachments))
			continue
		}
		if a := msg.Attachments[0]; a.Name != name || !bytes.Equal(a.Data, big) {
			t.Errorf("%s: attachment %q, %d bytes (identical: %v); want %q, %d bytes", pair, a.Name, len(a.Data), bytes.Equal(a.Data, big), name, len(big))
		}
	}
}
