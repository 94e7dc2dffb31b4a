package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
)

// MIMEOptions shape SendMIMEFrom.
type MIMEOptions struct {
	// DontSaveToSentItems keeps no copy in Sent Items where Graph allows it: see SendMIMEFrom.
	DontSaveToSentItems bool
}

// MaxMIMEMessage is the largest message SendMIMEFrom sends: Graph's limit for a message whose
// attachments go through upload sessions (150 MB).
const MaxMIMEMessage = 150 << 20

// maxBodyPart is the largest text or HTML part sent as the message's body: Graph's JSON request
// carries it whole (within 4 MB, JSON's escapes included); a larger one is sent as an attachment.
const maxBodyPart = 2 << 20

// maxMIMEParts bounds the parts of a message read for the draft path, against hostile input.
const maxMIMEParts = 1000

// ErrMIMEInvalid wraps the reasons a message cannot be read as RFC 5322 MIME.
var ErrMIMEInvalid = errors.New("graph: the message is not valid RFC 5322 MIME")

// SendMIMEFrom sends a ready-made RFC 5322 message of size bytes, read from mime, from the mailbox.
// Graph takes the recipients from the message's To, Cc and Bcc headers and removes Bcc from what
// it delivers, in both of the ways it is sent:
//
//   - A message that fits Graph's 4 MB request once base64-encoded (about 3 MB) goes as it is,
//     through sendMail in MIME format (SendMIME): every header and part is kept.
//   - A larger one (up to MaxMIMEMessage), or one to keep out of Sent Items, is read into a
//     Message — subject, From, To, Cc, Bcc, the HTML body (else the text body) and every other
//     part as an attachment — and sent with SendMail: inline when small, else from a draft whose
//     large attachments go through upload sessions, read from temporary files (0600, unlinked
//     at once where the system allows) a chunk at a time. Other headers do not survive this, an
//     inline image loses its Content-ID link, and a body part over 2 MB becomes an attachment
//     (body.txt or body.html).
//
// DontSaveToSentItems is honoured by sendMail only: a message large enough to need a draft always
// keeps its copy, as Graph sends a draft only with one.
func (c *Client) SendMIMEFrom(ctx context.Context, mime io.Reader, size int64, o MIMEOptions) error {
	if size <= 0 {
		return errors.New("graph: the MIME message is empty")
	}
	if size > MaxMIMEMessage {
		return fmt.Errorf("graph: the message is %d bytes, more than Graph's %d", size, MaxMIMEMessage)
	}
	if !o.DontSaveToSentItems && fitsSendMIME(size) {
		raw := make([]byte, size)
		if _, err := io.ReadFull(mime, raw); err != nil {
			return fmt.Errorf("graph: reading the message: %w", err)
		}
		return c.SendMIME(ctx, raw)
	}
	m, done, err := parseMIME(mime, true)
	if err != nil {
		return err
	}
	defer done()
	large := false
	for _, a := range m.Attachments {
		large = large || a.large()
	}
	// SendMail refuses a draft without a Sent Items copy; the message matters more than the copy.
	m.DontSaveToSentItems = o.DontSaveToSentItems && !large && !overInline(m.Attachments)
	return c.SendMail(ctx, m)
}

// fitsSendMIME says whether a message of size bytes fits sendMail in MIME format.
func fitsSendMIME(size int64) bool { return (size+2)/3*4 <= maxMIMERequest }

// overInline says whether attachments exceed what one sendMail request carries.
func overInline(atts []Attachment) bool {
	total := 0
	for _, a := range atts {
		total += a.size()
	}
	return total > inlineBudget
}

// ParseMIME reads an RFC 5322 message into a Message as SendMail sends it: subject, From, To, Cc
// and Bcc, the HTML body (else the text body), and every other part as an attachment (decoded).
// Errors wrap ErrMIMEInvalid.
func ParseMIME(mime io.Reader) (*Message, error) {
	m, _, err := parseMIME(mime, false)
	return m, err
}

// parseMIME is ParseMIME; with spill, an attachment of largeAttachment or more is decoded into a
// temporary file (unlinked at once where the system allows) and given as its Reader, and done
// closes those files.
func parseMIME(mime io.Reader, spill bool) (m *Message, done func(), err error) {
	var files spilled
	defer func() {
		if err != nil {
			files.close()
		}
	}()
	r, err := gomail.CreateReader(mime)
	if r == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
		return nil, nil, fmt.Errorf("%w: %v", ErrMIMEInvalid, err)
	}
	defer r.Close()
	m = &Message{}
	if err := headerInto(m, r.Header); err != nil {
		return nil, nil, err
	}
	var text string
	for n := 0; ; n++ {
		if n >= maxMIMEParts {
			return nil, nil, fmt.Errorf("%w: more than %d parts", ErrMIMEInvalid, maxMIMEParts)
		}
		p, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if p == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
			return nil, nil, fmt.Errorf("%w: %v", ErrMIMEInvalid, err)
		}
		if a, ok := asAttachment(p.Header); ok {
			if err := files.read(&a, p.Body, spill); err != nil {
				return nil, nil, err
			}
			m.Attachments = append(m.Attachments, a)
			continue
		}
		ct := ""
		if h, ok := p.Header.(*gomail.InlineHeader); ok {
			ct, _, _ = h.ContentType()
		}
		html := ct == "text/html" && !m.HTML
		if !html && text != "" {
			// Another alternative or text part: not sent (the body is one part).
			if _, err := io.Copy(io.Discard, p.Body); err != nil {
				return nil, nil, fmt.Errorf("%w: a part cannot be decoded: %v", ErrMIMEInvalid, err)
			}
			continue
		}
		body, err := io.ReadAll(io.LimitReader(p.Body, maxBodyPart+1))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: a part cannot be decoded: %v", ErrMIMEInvalid, err)
		}
		if len(body) > maxBodyPart {
			// Too large for a body in a Graph request: sent as an attachment (spilled like one).
			a := Attachment{Name: "body.txt", ContentType: firstNonEmpty(ct, "text/plain")}
			if ct == "text/html" {
				a.Name = "body.html"
			}
			if err := files.read(&a, io.MultiReader(bytes.NewReader(body), p.Body), spill); err != nil {
				return nil, nil, err
			}
			m.Attachments = append(m.Attachments, a)
			continue
		}
		if html {
			m.Body, m.HTML = string(body), true
		} else {
			text = string(body)
		}
	}
	if !m.HTML {
		m.Body = text
	}
	return m, files.close, nil
}

// spilled are the temporary files of a message's large attachments.
type spilled []spillFile

type spillFile struct {
	f        *os.File
	unlinked bool // removed from its directory while open (not on Windows)
}

// read reads a part's content into a: in memory, or past largeAttachment (with spill) into a file.
func (s *spilled) read(a *Attachment, body io.Reader, spill bool) error {
	r := body
	if spill {
		r = io.LimitReader(body, largeAttachment)
	}
	head, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%w: a part cannot be decoded: %v", ErrMIMEInvalid, err)
	}
	if !spill || len(head) < largeAttachment {
		a.Content = head
		return nil
	}
	f, err := os.CreateTemp("", "mailoauth-attachment-*") // 0600
	if err != nil {
		return fmt.Errorf("graph: a temporary file for an attachment: %w", err)
	}
	*s = append(*s, spillFile{f: f, unlinked: os.Remove(f.Name()) == nil})
	n, err := io.Copy(f, io.MultiReader(bytes.NewReader(head), body))
	if err != nil {
		return fmt.Errorf("%w: a part cannot be decoded: %v", ErrMIMEInvalid, err)
	}
	a.Reader, a.Size = f, int(n)
	return nil
}

// close closes and removes the files.
func (s spilled) close() {
	for _, sf := range s {
		_ = sf.f.Close()
		if !sf.unlinked {
			_ = os.Remove(sf.f.Name())
		}
	}
}

// asAttachment says from its header whether a part is an attachment (a Content-Disposition of
// attachment, a named part, anything but text/plain and text/html) and returns it without content.
func asAttachment(h gomail.PartHeader) (Attachment, bool) {
	var name, ct string
	inline := true
	switch h := h.(type) {
	case *gomail.AttachmentHeader:
		name, _ = h.Filename()
		ct, _, _ = h.ContentType()
		inline = false
	case *gomail.InlineHeader:
		ct, _, _ = h.ContentType()
		if _, p, err := h.ContentDisposition(); err == nil {
			name = p["filename"]
		}
		if _, p, err := h.ContentType(); err == nil && name == "" {
			name = p["name"]
		}
		if name == "" && (ct == "text/plain" || ct == "text/html" || ct == "") {
			return Attachment{}, false
		}
	}
	if name == "" {
		name = "attachment"
	}
	return Attachment{Name: name, ContentType: ct, IsInline: inline}, true
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// headerInto fills m's subject and addresses from the message's header.
func headerInto(m *Message, h gomail.Header) error {
	m.Subject, _ = h.Subject()
	lists := []struct {
		key string
		to  *[]Address
	}{{"To", &m.To}, {"Cc", &m.Cc}, {"Bcc", &m.Bcc}}
	for _, l := range lists {
		list, err := h.AddressList(l.key)
		if err != nil {
			return fmt.Errorf("%w: the %s header cannot be read: %v", ErrMIMEInvalid, l.key, err)
		}
		*l.to = addresses(list)
	}
	from, err := h.AddressList("From")
	if err != nil {
		return fmt.Errorf("%w: the From header cannot be read: %v", ErrMIMEInvalid, err)
	}
	if len(from) > 0 {
		m.From = &addresses(from[:1])[0]
	}
	return nil
}

func addresses(list []*gomail.Address) []Address {
	var out []Address
	for _, a := range list {
		out = append(out, Address{Name: strings.TrimSpace(a.Name), Address: a.Address})
	}
	return out
}
