package graph

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	netmail "net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// ---- Graph's JSON ------------------------------------------------------------------------------

// EmailAddress is Graph's emailAddress.
type EmailAddress struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// Recipient is Graph's recipient.
type Recipient struct {
	EmailAddress EmailAddress `json:"emailAddress"`
}

// ItemBody is Graph's itemBody.
type ItemBody struct {
	ContentType string `json:"contentType"` // text or html
	Content     string `json:"content"`
}

// Attachment is Graph's fileAttachment (in and out).
type Attachment struct {
	ODataType    string `json:"@odata.type,omitempty"`
	ID           string `json:"id,omitempty"`
	Name         string `json:"name"`
	ContentType  string `json:"contentType,omitempty"`
	Size         int    `json:"size"`
	IsInline     bool   `json:"isInline"`
	ContentID    string `json:"contentId,omitempty"`
	ContentBytes []byte `json:"contentBytes,omitempty"` // base64 in JSON
	// LastModifiedDateTime is set on output.
	LastModifiedDateTime string `json:"lastModifiedDateTime,omitempty"`
}

// MessageIn is the message of sendMail and of a new draft.
type MessageIn struct {
	Subject       string       `json:"subject"`
	Body          *ItemBody    `json:"body"`
	From          *Recipient   `json:"from"`
	ToRecipients  []Recipient  `json:"toRecipients"`
	CcRecipients  []Recipient  `json:"ccRecipients"`
	BccRecipients []Recipient  `json:"bccRecipients"`
	ReplyTo       []Recipient  `json:"replyTo"`
	Attachments   []Attachment `json:"attachments"`
	Importance    string       `json:"importance"`
}

// SendMailIn is sendMail's request body.
type SendMailIn struct {
	Message         *MessageIn      `json:"message"`
	SaveToSentItems json.RawMessage `json:"saveToSentItems"` // true, false, "true" or "false"
}

// save reads saveToSentItems (default true).
func (in SendMailIn) save() (bool, error) {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(string(in.SaveToSentItems)), `"`)) {
	case "", "true", "null":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errors.New("saveToSentItems is not a boolean")
}

// ---- building MIME -----------------------------------------------------------------------------

// clean makes a header value one line (no header injection).
func clean(s string) string {
	if !strings.ContainsAny(s, "\r\n\x00") {
		return s
	}
	return strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ", "\x00", "").Replace(s)
}

// recipientError is an invalid recipient (ErrorInvalidRecipients).
type recipientError struct{ addr string }

func (e *recipientError) Error() string {
	if e.addr == "" {
		return "At least one recipient isn't valid., A message can't be sent because it contains no recipients."
	}
	return "At least one recipient isn't valid., Recipient '" + e.addr + "' is not resolved. All recipients must be resolved before a message can be submitted."
}

func toAddrs(list []Recipient) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, r := range list {
		a := strings.TrimSpace(r.EmailAddress.Address)
		p, err := netmail.ParseAddress(a)
		if err != nil || p.Address != a || strings.ContainsAny(a, " <>\"") {
			return nil, &recipientError{clean(a)}
		}
		out = append(out, &mail.Address{Name: clean(r.EmailAddress.Name), Address: a})
	}
	return out, nil
}

// Built is a message rendered as RFC 5322, with its envelope recipients (To, Cc and Bcc).
type Built struct {
	Data       []byte
	Recipients []string
}

// BuildMIME renders a Graph message sent from `from` as RFC 5322 (go-message): From, To, Cc (Bcc
// only in the envelope), Subject (RFC 2047 when not ASCII), Date, Message-ID, MIME-Version, a text
// or html body, and file attachments (base64, RFC 2231 file names). needRecipients makes a message
// without recipients an error (sending; a draft may have none).
func BuildMIME(m *MessageIn, from EmailAddress, now time.Time, msgIDHost string, needRecipients bool) (*Built, error) {
	var h mail.Header
	fromAddr := &mail.Address{Name: clean(from.Name), Address: clean(from.Address)}
	h.SetAddressList("From", []*mail.Address{fromAddr})
	to, err := toAddrs(m.ToRecipients)
	if err != nil {
		return nil, err
	}
	cc, err := toAddrs(m.CcRecipients)
	if err != nil {
		return nil, err
	}
	bcc, err := toAddrs(m.BccRecipients)
	if err != nil {
		return nil, err
	}
	replyTo, err := toAddrs(m.ReplyTo)
	if err != nil {
		return nil, err
	}
	if needRecipients && len(to)+len(cc)+len(bcc) == 0 {
		return nil, &recipientError{}
	}
	if len(to) > 0 {
		h.SetAddressList("To", to)
	}
	if len(cc) > 0 {
		h.SetAddressList("Cc", cc)
	}
	if len(replyTo) > 0 {
		h.SetAddressList("Reply-To", replyTo)
	}
	h.SetSubject(clean(m.Subject))
	h.SetDate(now)
	var id [16]byte
	_, _ = rand.Read(id[:])
	h.SetMessageID(strings.ToUpper(hex.EncodeToString(id[:])) + "@" + clean(msgIDHost))
	h.Set("MIME-Version", "1.0")
	switch strings.ToLower(m.Importance) {
	case "high":
		h.Set("Importance", "high")
	case "low":
		h.Set("Importance", "low")
	}
	ct, content := "text/plain", ""
	if m.Body != nil {
		switch strings.ToLower(m.Body.ContentType) {
		case "", "text":
		case "html":
			ct = "text/html"
		default:
			//lint:ignore ST1005 Graph's own words for an unknown body content type
			return nil, fmt.Errorf("Requested value '%s' was not found.", clean(m.Body.ContentType))
		}
		content = m.Body.Content
	}
	if !utf8.ValidString(content) {
		content = strings.ToValidUTF8(content, "\uFFFD")
	}
	var buf bytes.Buffer
	if len(m.Attachments) == 0 {
		h.SetContentType(ct, map[string]string{"charset": "utf-8"})
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		w, err := message.CreateWriter(&buf, h.Header)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, content); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	} else {
		mw, err := mail.CreateWriter(&buf, h)
		if err != nil {
			return nil, err
		}
		var ih mail.InlineHeader
		ih.SetContentType(ct, map[string]string{"charset": "utf-8"})
		w, err := mw.CreateSingleInline(ih)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, content); err != nil {
			return nil, err
		}
		w.Close()
		for _, a := range m.Attachments {
			if a.ODataType != "" && !strings.EqualFold(a.ODataType, "#microsoft.graph.fileAttachment") {
				return nil, fmt.Errorf("the emulator supports only #microsoft.graph.fileAttachment, not %s", clean(a.ODataType))
			}
			var ah mail.AttachmentHeader
			name := clean(a.Name)
			if name == "" {
				name = "attachment"
			}
			act := "application/octet-stream"
			if t, _, err := mime.ParseMediaType(clean(a.ContentType)); err == nil && strings.Contains(t, "/") {
				act = t
			}
			ah.SetContentType(act, map[string]string{"name": name})
			ah.SetFilename(name)
			if a.ContentID != "" {
				ah.Set("Content-ID", "<"+strings.Trim(clean(a.ContentID), "<>")+">")
			}
			w, err := mw.CreateAttachment(ah)
			if err != nil {
				return nil, err
			}
			if _, err := w.Write(a.ContentBytes); err != nil {
				return nil, err
			}
			w.Close()
		}
		if err := mw.Close(); err != nil {
			return nil, err
		}
	}
	var rcpts []string
	for _, l := range [][]*mail.Address{to, cc, bcc} {
		for _, a := range l {
			rcpts = append(rcpts, a.Address)
		}
	}
	return &Built{Data: buf.Bytes(), Recipients: rcpts}, nil
}

// ---- reading MIME ------------------------------------------------------------------------------

// parsed is what Graph shows of a stored message.
type parsed struct {
	subject, messageID string
	from, sender       *Recipient
	to, cc, bcc, reply []Recipient
	date               time.Time
	body               ItemBody
	text               string // plain text, for bodyPreview
	attachments        []Attachment
	importance         string
}

func recipients(h mail.Header, key string) []Recipient {
	list, err := h.AddressList(key)
	out := []Recipient{}
	if err != nil {
		return out
	}
	for _, a := range list {
		out = append(out, Recipient{EmailAddress{Name: a.Name, Address: a.Address}})
	}
	return out
}

var tagRE = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)

// htmlText is a rough plain-text rendering of HTML (for bodyPreview).
func htmlText(s string) string { return html.UnescapeString(tagRE.ReplaceAllString(s, " ")) }

// maxPart bounds what is read of one part (the store's messages are bounded already).
const maxPart = MaxAttachment + (1 << 20)

// parseMIME reads a stored message. It never fails: what cannot be parsed is shown as text.
func parseMIME(data []byte) parsed {
	var p parsed
	mr, err := mail.CreateReader(bytes.NewReader(data))
	if mr == nil {
		p.body = ItemBody{ContentType: "text", Content: string(data)}
		p.text = p.body.Content
		_ = err
		return p
	}
	h := mr.Header
	p.subject, _ = h.Subject()
	if p.subject == "" {
		p.subject = h.Get("Subject")
	}
	p.messageID = h.Get("Message-Id")
	p.date, _ = h.Date()
	if f := recipients(h, "From"); len(f) > 0 {
		p.from = &f[0]
	}
	if f := recipients(h, "Sender"); len(f) > 0 {
		p.sender = &f[0]
	} else {
		p.sender = p.from
	}
	p.to, p.cc, p.bcc, p.reply = recipients(h, "To"), recipients(h, "Cc"), recipients(h, "Bcc"), recipients(h, "Reply-To")
	p.importance = "normal"
	if imp := strings.ToLower(h.Get("Importance")); imp == "high" || imp == "low" {
		p.importance = imp
	}
	var plain, htm *string
	for {
		part, err := mr.NextPart()
		if err == io.EOF || (err != nil && part == nil) {
			break
		}
		switch ph := part.Header.(type) {
		case *mail.AttachmentHeader:
			name, _ := ph.Filename()
			ct, _, _ := ph.ContentType()
			b, _ := io.ReadAll(io.LimitReader(part.Body, maxPart))
			p.attachments = append(p.attachments, Attachment{Name: name, ContentType: ct, ContentBytes: b, Size: len(b),
				ContentID: strings.Trim(ph.Get("Content-Id"), "<>")})
		case *mail.InlineHeader:
			ct, params, _ := ph.ContentType()
			b, _ := io.ReadAll(io.LimitReader(part.Body, maxPart))
			_, dparams, _ := ph.ContentDisposition()
			name := dparams["filename"]
			if name == "" {
				name = params["name"]
			}
			switch {
			case name == "" && (ct == "text/plain" || ct == "") && plain == nil:
				s := string(b)
				plain = &s
			case name == "" && ct == "text/html" && htm == nil:
				s := string(b)
				htm = &s
			case name != "" || !strings.HasPrefix(ct, "text/"):
				p.attachments = append(p.attachments, Attachment{Name: name, ContentType: ct, ContentBytes: b, Size: len(b),
					IsInline: true, ContentID: strings.Trim(ph.Get("Content-Id"), "<>")})
			}
		}
	}
	switch {
	case htm != nil:
		p.body = ItemBody{ContentType: "html", Content: *htm}
		p.text = htmlText(*htm)
		if plain != nil {
			p.text = *plain
		}
	case plain != nil:
		p.body = ItemBody{ContentType: "text", Content: *plain}
		p.text = *plain
	default:
		p.body = ItemBody{ContentType: "text"}
	}
	return p
}

// preview is Graph's bodyPreview: the first 255 characters of the text, whitespace collapsed.
func preview(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > 255 {
		r := []rune(s)
		s = string(r[:255])
	}
	return s
}
