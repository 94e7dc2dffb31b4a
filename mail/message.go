// Package mail builds, sends and reads messages whatever the protocol. Build writes a Draft (text or
// HTML, attachments given as bytes or read from files with AttachFile) as an RFC 5322 message and
// Parse reads one back, both on emersion/go-message, never MIME by hand. SMTPSender submits a
// message over an authenticated go-smtp client; IMAPReader and POPReader implement Reader, listing
// and fetching as Summary and Message values; SaveAttachments writes attachments to a directory
// without ever overwriting a file or leaving the directory.
//
// Package mail/graphmail does the same over Microsoft Graph. This package must not import it nor the
// Graph client, so that a program that mails over IMAP or SMTP does not build Graph's.
package mail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Summary is one message as a listing shows it.
type Summary struct {
	// ID names the message for Get, Move and Delete of the same transport (and the same account).
	ID      string    `json:"id"`
	Folder  string    `json:"folder,omitempty"`
	Subject string    `json:"subject"`
	From    string    `json:"from"`
	To      []string  `json:"to"`
	Date    time.Time `json:"date"`
	Size    int64     `json:"size"`
	// Unread is false once the message was read. POP3 keeps no read state: its messages are
	// all reported unread.
	Unread         bool `json:"unread"`
	HasAttachments bool `json:"has_attachments"`
}

// Attachment is one attachment: of a message read (decoded), or of a Draft to send.
type Attachment struct {
	// Name is the file name the message gives it (decoded from RFC 2231 / RFC 2047). A name read
	// from a message may be unsafe as a path: SaveAttachments makes it safe.
	Name string `json:"name"`
	// ContentType is its media type, e.g. "application/pdf". In a Draft, empty means the type
	// that Name's extension suggests, else application/octet-stream.
	ContentType string `json:"content_type"`
	Data        []byte `json:"-"`
}

// AttachFile reads the file at path as an attachment named by the file's base name and typed by its
// extension. The error for a file that cannot be read names it and wraps the reason
// (errors.Is(err, fs.ErrNotExist) tells a missing file).
func AttachFile(path string) (Attachment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is said once, here
		}
		return Attachment{}, fmt.Errorf("cannot attach %s: %w", path, err)
	}
	name := filepath.Base(path)
	return Attachment{Name: name, ContentType: Attachment{Name: name}.MediaType(), Data: data}, nil
}

// MediaType is the media type to send the attachment with: its ContentType, else the type its
// name's extension suggests, else application/octet-stream.
func (a Attachment) MediaType() string {
	if a.ContentType != "" {
		return a.ContentType
	}
	if ct := mime.TypeByExtension(strings.ToLower(filepath.Ext(a.Name))); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

// Message is a full message: its bytes as stored, and what they say.
type Message struct {
	Summary
	Raw         []byte // RFC 5322, exactly as the server returned it
	Cc          []string
	Text        string // the first text/plain part that is not an attachment
	HTML        string // the first text/html part that is not an attachment
	Attachments []Attachment
}

// Folder is one mail folder.
type Folder struct {
	Name   string `json:"name"`           // as the server names it; what --folder takes
	Role   string `json:"role,omitempty"` // "inbox", "sent", "drafts", "trash", "junk", "archive"
	Total  int    `json:"total"`
	Unread int    `json:"unread"`
}

// Draft is a message to write with Build (or to send with graphmail.Send).
type Draft struct {
	// From, To and Cc take addresses as a user types them: "bob@x", "Bob <bob@x>", comma lists.
	From, To, Cc []string
	// Bcc recipients get the message without appearing in it: Build never writes them; they are
	// for the envelope (Recipients).
	Bcc     []string
	Subject string
	// Text is the body: plain text, or HTML when HTML is set.
	Text string
	HTML bool
	// Attachments follow the body in order; AttachFile reads a file as one.
	Attachments []Attachment
	// Date is the Date header; zero means the time Build runs.
	Date time.Time
}

// Recipients are every envelope recipient of a draft: To, Cc and Bcc.
func (d Draft) Recipients() []string {
	return append(append(append([]string(nil), d.To...), d.Cc...), d.Bcc...)
}

// Build writes a draft as an RFC 5322 message: headers encoded per RFC 2047 where they are not
// ASCII, attachments base64 with their names per RFC 2231, text quoted-printable.
func Build(d Draft) ([]byte, error) {
	if len(d.From) == 0 {
		return nil, errors.New("a message needs a From address")
	}
	if len(d.To)+len(d.Cc)+len(d.Bcc) == 0 {
		return nil, errors.New("a message needs at least one recipient")
	}
	for i, a := range d.Attachments {
		if a.Name == "" {
			return nil, fmt.Errorf("attachment %d has no Name: give it a file name", i+1)
		}
	}

	var h gomail.Header
	date := d.Date
	if date.IsZero() {
		date = time.Now()
	}
	h.SetDate(date)
	for _, f := range []struct {
		key  string
		list []string
	}{{"From", d.From}, {"To", d.To}, {"Cc", d.Cc}} {
		if len(f.list) == 0 {
			continue
		}
		addrs, err := ParseAddresses(f.list)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.key, err)
		}
		h.SetAddressList(f.key, addrs)
	}
	h.SetSubject(d.Subject)
	if err := h.GenerateMessageID(); err != nil {
		return nil, err
	}
	h.Set("MIME-Version", "1.0")

	bodyType := "text/plain"
	if d.HTML {
		bodyType = "text/html"
	}
	text := crlf(d.Text)
	var buf bytes.Buffer
	if len(d.Attachments) == 0 {
		h.SetContentType(bodyType, map[string]string{"charset": "utf-8"})
		w, err := gomail.CreateSingleInlineWriter(&buf, h)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, text); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	mw, err := gomail.CreateWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	var ih gomail.InlineHeader
	ih.SetContentType(bodyType, map[string]string{"charset": "utf-8"})
	w, err := mw.CreateSingleInline(ih)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, text); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	for _, a := range d.Attachments {
		var ah gomail.AttachmentHeader
		// Content-Type's name in RFC 2047 for older readers (go-message's encoding, as Outlook writes it);
		// Content-Disposition's filename in RFC 2231 (the standard's way, through mime.FormatMediaType).
		ah.SetContentType(a.MediaType(), map[string]string{"name": a.Name})
		if disp := mime.FormatMediaType("attachment", map[string]string{"filename": a.Name}); disp != "" {
			ah.Set("Content-Disposition", disp)
		} else {
			ah.SetFilename(a.Name)
		}
		w, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(a.Data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// crlf gives a text body CRLF line ends, as RFC 5322 wants them.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// ParseAddresses parses addresses as a user types them: "bob@x", "Bob <bob@x>", or several separated
// by commas.
func ParseAddresses(list []string) ([]*gomail.Address, error) {
	var out []*gomail.Address
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		addrs, err := gomail.ParseAddressList(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an e-mail address", s)
		}
		out = append(out, addrs...)
	}
	return out, nil
}

// parseHeader reads only a message's header (what POP3's TOP n 0 returns) into a summary. A header
// cannot tell whether there are attachments: HasAttachments is guessed from a multipart/mixed
// top-level type, which is how messages with attachments are built.
func parseHeader(raw []byte) (Summary, error) {
	var s Summary
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return s, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var cc []string
	fillHeader(&s, &cc, gomail.Header{Header: message.Header{Header: h}})
	if mt, _, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil && mt == "multipart/mixed" {
		s.HasAttachments = true
	}
	return s, nil
}

// ErrMalformed is a message that cannot be parsed as RFC 5322.
var ErrMalformed = errors.New("not an RFC 5322 message")

// maxParts bounds the parts Parse reads, against hostile input.
const maxParts = 1000

// Parse reads an RFC 5322 message: its header into the summary (ID and Size excepted, which are the
// transport's, Size set to len(raw)), its text and HTML bodies and its attachments. Parts in a charset
// go-message does not know are kept undecoded; a body that cannot be decoded is an error wrapping
// ErrMalformed.
func Parse(raw []byte) (*Message, error) {
	m := &Message{Raw: raw}
	m.Size = int64(len(raw))
	r, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r == nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	defer r.Close()
	fillHeader(&m.Summary, &m.Cc, r.Header)
	for n := 0; ; n++ {
		if n >= maxParts {
			return nil, fmt.Errorf("%w: more than %d parts", ErrMalformed, maxParts)
		}
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if p == nil {
			break
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			return nil, fmt.Errorf("%w: a part cannot be decoded: %v", ErrMalformed, err)
		}
		switch h := p.Header.(type) {
		case *gomail.InlineHeader:
			ct, _, _ := h.ContentType()
			switch {
			case ct == "text/plain" && m.Text == "":
				m.Text = string(body)
			case ct == "text/html" && m.HTML == "":
				m.HTML = string(body)
			case ct != "text/plain" && ct != "text/html" && isNamed(h.Header):
				m.Attachments = append(m.Attachments, Attachment{Name: partName(h.Header), ContentType: ct, Data: body})
			}
		case *gomail.AttachmentHeader:
			ct, _, _ := h.ContentType()
			name, _ := h.Filename()
			if name == "" {
				name = partName(h.Header)
			}
			m.Attachments = append(m.Attachments, Attachment{Name: name, ContentType: ct, Data: body})
		}
	}
	m.HasAttachments = len(m.Attachments) > 0
	return m, nil
}

// isNamed says whether an inline part carries a file name (an inline image, say): kept as an attachment.
func isNamed(h message.Header) bool { return partName(h) != "" }

func partName(h message.Header) string {
	if _, p, err := h.ContentDisposition(); err == nil && p["filename"] != "" {
		return p["filename"]
	}
	if _, p, err := h.ContentType(); err == nil {
		return p["name"]
	}
	return ""
}

func fillHeader(s *Summary, cc *[]string, h gomail.Header) {
	s.Subject, _ = h.Subject()
	if s.Subject == "" {
		s.Subject = h.Get("Subject")
	}
	if from, err := h.AddressList("From"); err == nil && len(from) > 0 {
		s.From = formatAddress(from[0])
	} else {
		s.From = h.Get("From")
	}
	if to, err := h.AddressList("To"); err == nil {
		s.To = formatAddresses(to)
	}
	if c, err := h.AddressList("Cc"); err == nil {
		*cc = formatAddresses(c)
	}
	s.Date, _ = h.Date()
}

func formatAddresses(list []*gomail.Address) []string {
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, formatAddress(a))
	}
	return out
}

// formatAddress is "Name <addr>", or the address alone, decoded (not RFC 2047) for people to read.
func formatAddress(a *gomail.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return a.Name + " <" + a.Address + ">"
}
