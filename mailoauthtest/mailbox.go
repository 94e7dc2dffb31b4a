package mailoauthtest

import (
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
)

// Inbox is the folder where mail delivered to a mailbox arrives; Graph's and SMTP's sent copies go
// to "Sent Items" and drafts to "Drafts", as in Exchange Online.
const Inbox = "INBOX"

// Message is one message of a mailbox.
type Message struct {
	Folder   string    // as IMAP names it: INBOX, Sent Items, Drafts, ...
	Received time.Time // when it arrived
	Subject  string    // the decoded Subject header
	Data     []byte    // the message as stored, an RFC 5322 message byte for byte
}

// Messages lists the messages of a user's or shared mailbox, folder by folder (INBOX first), oldest
// first in each.
func (s *Server) Messages(mailbox string) ([]Message, error) {
	m := s.e.Store.Mailbox(mailbox)
	if m == nil {
		return nil, fmt.Errorf("mailoauthtest: no mailbox %s in this world", mailbox)
	}
	var out []Message
	for _, name := range m.Folders() {
		f := m.Folder(name)
		if f == nil {
			continue // removed meanwhile
		}
		for _, msg := range f.Messages() {
			out = append(out, Message{Folder: msg.Folder, Received: msg.Received, Subject: subject(msg.Data),
				Data: bytes.Clone(msg.Data)})
		}
	}
	return out, nil
}

// Deliver puts msg, an RFC 5322 message, into the INBOX of a user's or shared mailbox, as if it had
// arrived from outside: for a test of a program that reads mail. It is a MessageDelivered event.
func (s *Server) Deliver(mailbox string, msg []byte) error {
	if _, err := mail.ReadMessage(bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("mailoauthtest: Deliver takes an RFC 5322 message (header, blank line, body): %w", err)
	}
	if _, err := s.e.Store.Append(mailbox, Inbox, bytes.Clone(msg), nil, time.Time{}); err != nil {
		return fmt.Errorf("mailoauthtest: no mailbox %s in this world", mailbox)
	}
	s.e.Events.Add(events.Event{Kind: events.MessageDelivered, Mailbox: mailbox, Size: len(msg)})
	return nil
}

func subject(data []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return ""
	}
	raw := m.Header.Get("Subject")
	if s, err := new(mime.WordDecoder).DecodeHeader(raw); err == nil {
		return s
	}
	return raw
}
