// Package graphmail adapts the Microsoft Graph mail client (package graph) to package mail's Reader
// and to sending a mail.Draft, so that the CLI drives Graph as it drives IMAP, POP3 and SMTP. It is a
// separate package so that package mail never depends on the Graph client.
//
// Ids are Graph's message ids. Summary.Size is the message's PidTagMessageSize, which the Graph
// client asks for as an extended property (Graph v1.0 has no size property); 0 if Graph gave none.
package graphmail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"

	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/mail"
)

// Reader reads a mailbox through Graph.
type Reader struct {
	C *graph.Client
}

// wellKnown maps folder names as IMAP and users spell them to Graph's well-known names.
var wellKnown = map[string]string{
	"inbox": "inbox", "drafts": "drafts", "sent items": "sentitems", "sentitems": "sentitems",
	"deleted items": "deleteditems", "deleteditems": "deleteditems", "junk email": "junkemail",
	"junkemail": "junkemail", "archive": "archive",
}

var roles = map[string]string{"inbox": "inbox", "drafts": "drafts", "sentitems": "sent", "deleteditems": "trash", "junkemail": "junk", "archive": "archive"}

// folderRef turns a folder name into what Graph's paths take: a well-known name, the id of a folder
// with that display name, or the name as given (an id).
func (r *Reader) folderRef(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "inbox", nil
	}
	if w, ok := wellKnown[strings.ToLower(name)]; ok {
		return w, nil
	}
	folders, err := r.C.Folders(ctx)
	if err != nil {
		return "", err
	}
	for _, f := range folders {
		if strings.EqualFold(f.DisplayName, name) {
			return f.ID, nil
		}
	}
	return name, nil
}

// Folders lists the top-level folders.
func (r *Reader) Folders(ctx context.Context) ([]mail.Folder, error) {
	list, err := r.C.Folders(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]mail.Folder, 0, len(list))
	for _, f := range list {
		out = append(out, mail.Folder{Name: f.DisplayName, Role: roles[wellKnown[strings.ToLower(f.DisplayName)]], Total: f.TotalItemCount, Unread: f.UnreadItemCount})
	}
	return out, nil
}

func summary(m *graph.Message, folder string) mail.Summary {
	s := mail.Summary{ID: m.ID, Folder: folder, Subject: m.Subject, Date: m.Received, Unread: !m.IsRead, HasAttachments: m.HasAttachments, Size: m.Size, To: []string{}}
	if m.From != nil {
		s.From = address(*m.From)
	}
	for _, a := range m.To {
		s.To = append(s.To, address(a))
	}
	return s
}

func address(a graph.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return a.Name + " <" + a.Address + ">"
}

// List lists a folder's newest messages.
func (r *Reader) List(ctx context.Context, folder string, limit int, unseen bool) ([]mail.Summary, error) {
	ref, err := r.folderRef(ctx, folder)
	if err != nil {
		return nil, err
	}
	msgs, err := r.C.ListMessages(ctx, ref, graph.ListOptions{Limit: limit, Unread: unseen})
	if err != nil {
		return nil, err
	}
	out := make([]mail.Summary, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, summary(m, folder))
	}
	return out, nil
}

// Get reads a message's MIME ($value) and parses it; the read state comes from the message resource.
func (r *Reader) Get(ctx context.Context, id, _ string) (*mail.Message, error) {
	meta, err := r.C.GetMessage(ctx, id)
	if err != nil {
		if graph.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %v", mail.ErrNotFound, err)
		}
		return nil, err
	}
	raw, err := r.C.GetMIME(ctx, id)
	if err != nil {
		return nil, err
	}
	m, err := mail.Parse(raw)
	if err != nil {
		return nil, err
	}
	m.ID, m.Unread = id, !meta.IsRead
	return m, nil
}

// Move moves a message and returns its new id (Graph gives moved messages new ids).
func (r *Reader) Move(ctx context.Context, id, folder string) (string, error) {
	ref, err := r.folderRef(ctx, folder)
	if err != nil {
		return "", err
	}
	m, err := r.C.Move(ctx, id, ref)
	if err != nil {
		if graph.IsNotFound(err) {
			return "", fmt.Errorf("%w: %v", mail.ErrNotFound, err)
		}
		return "", err
	}
	return m.ID, nil
}

// Delete deletes a message (Graph moves it to Deleted Items).
func (r *Reader) Delete(ctx context.Context, id string) error {
	err := r.C.Delete(ctx, id)
	if graph.IsNotFound(err) {
		return fmt.Errorf("%w: %v", mail.ErrNotFound, err)
	}
	return err
}

// Close does nothing: Graph has no session.
func (r *Reader) Close() error { return nil }

// Send sends a draft through Graph's sendMail (large attachments through upload sessions, as the
// Graph client decides).
func Send(ctx context.Context, c *graph.Client, d mail.Draft) error {
	m := &graph.Message{Subject: d.Subject, Body: d.Text, HTML: d.HTML}
	for _, l := range []struct {
		in  []string
		out *[]graph.Address
	}{{d.To, &m.To}, {d.Cc, &m.Cc}, {d.Bcc, &m.Bcc}} {
		addrs, err := mail.ParseAddresses(l.in)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			*l.out = append(*l.out, graph.Address{Name: a.Name, Address: a.Address})
		}
	}
	for _, a := range d.Attachments {
		m.Attachments = append(m.Attachments, graph.Attachment{Name: a.Name, ContentType: a.MediaType(), Size: len(a.Data), Content: a.Data})
	}
	return c.SendMail(ctx, m)
}

// ErrNotRecipient is what SendMIME's error matches (errors.Is) when the message's To or Cc header
// names an address that is not among its recipients: Graph would deliver to it, so nothing is sent.
var ErrNotRecipient = errors.New("a To or Cc address of the message is not a recipient")

type notRecipientError struct{ addr, header string }

func (e *notRecipientError) Error() string {
	return fmt.Sprintf("over Graph the message also goes to %s, named in its %s header but not a recipient; nothing was sent", e.addr, e.header)
}

func (e *notRecipientError) Is(target error) bool { return target == ErrNotRecipient }

// SendMIME submits a ready-made RFC 5322 message (sendmail's, from mail.Prepare) to rcpts through
// Graph's sendMail in MIME format. Graph delivers to the message's To, Cc and Bcc headers, not to an
// envelope: recipients of rcpts the To and Cc headers do not name are added in a Bcc header (which
// Graph removes), and a To or Cc address that is not in rcpts is refused before anything is sent,
// since Graph would deliver to it (sendmail without -t).
func SendMIME(ctx context.Context, c *graph.Client, raw []byte, rcpts []string) error {
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("%w: %v", mail.ErrMalformed, err)
	}
	want := map[string]bool{}
	for _, r := range rcpts {
		want[strings.ToLower(strings.TrimSpace(r))] = true
	}
	named := map[string]bool{}
	for _, k := range []string{"To", "Cc", "Bcc"} {
		if msg.Header.Get(k) == "" {
			continue
		}
		list, err := msg.Header.AddressList(k)
		if err != nil {
			return fmt.Errorf("%w: its %s header is not a list of addresses (%v)", mail.ErrMalformed, k, err)
		}
		for _, a := range list {
			addr := strings.ToLower(a.Address)
			if !want[addr] {
				return &notRecipientError{addr: a.Address, header: k}
			}
			named[addr] = true
		}
	}
	var bcc []string
	for _, r := range rcpts {
		if r = strings.TrimSpace(r); r != "" && !named[strings.ToLower(r)] {
			named[strings.ToLower(r)] = true
			bcc = append(bcc, (&netmail.Address{Address: r}).String())
		}
	}
	if len(bcc) > 0 {
		raw = append([]byte("Bcc: "+strings.Join(bcc, ",\r\n ")+"\r\n"), raw...)
	}
	return c.SendMIME(ctx, raw)
}
