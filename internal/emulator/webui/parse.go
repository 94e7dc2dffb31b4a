package webui

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"

	gomessage "github.com/emersion/go-message"
)

// maxPart bounds what is read of one body part, so a huge message cannot exhaust memory.
const maxPart = 32 << 20

// summary is what a message list shows of a message.
type summary struct {
	From, Subject string
	Date          time.Time
}

// summarize reads the headers a message list shows; a message too broken to parse shows blanks.
func summarize(data []byte) summary {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return summary{}
	}
	var s summary
	dec := new(mime.WordDecoder)
	s.From = decodeHeader(dec, m.Header.Get("From"))
	s.Subject = decodeHeader(dec, m.Header.Get("Subject"))
	s.Date, _ = m.Header.Date()
	return s
}

func decodeHeader(dec *mime.WordDecoder, raw string) string {
	if s, err := dec.DecodeHeader(raw); err == nil {
		return s
	}
	return raw
}

// header is one header field, decoded.
type header struct{ Name, Value string }

// attachment is a body part shown for download.
type attachment struct {
	Index    int // the part's number in walk order, as the download link names it
	Filename string
	Type     string
	Size     int
}

// parsed is a message taken apart for the message view.
type parsed struct {
	Headers     []header
	Text        string
	HTML        string
	Attachments []attachment
	Err         string // why the body could not be read, when it could not
}

// shownHeaders are the header fields the message view lists, in this order.
var shownHeaders = []string{"From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID"}

// parse takes a message apart: its main header fields, its first text/plain and text/html parts
// (in their charsets, as UTF-8), and the parts to download.
func parse(data []byte) parsed {
	var p parsed
	e, err := gomessage.Read(bytes.NewReader(data))
	if e == nil {
		return parsed{Err: fmt.Sprintf("the message cannot be read as RFC 5322: %v", err)}
	}
	dec := new(mime.WordDecoder)
	for _, name := range shownHeaders {
		for _, v := range e.Header.Values(name) {
			p.Headers = append(p.Headers, header{name, decodeHeader(dec, v)})
		}
	}
	n := 0
	err = e.Walk(func(_ []int, part *gomessage.Entity, err error) error {
		if err != nil && !gomessage.IsUnknownCharset(err) {
			return err // a charset other than UTF-8 is shown as its bytes are
		}
		if part.MultipartReader() != nil {
			return nil
		}
		n++
		body, err := io.ReadAll(io.LimitReader(part.Body, maxPart))
		if err != nil {
			return err
		}
		typ, _, _ := part.Header.ContentType()
		disp, _, _ := part.Header.ContentDisposition()
		switch {
		case disp != "attachment" && typ == "text/plain" && p.Text == "":
			p.Text = string(body)
		case disp != "attachment" && typ == "text/html" && p.HTML == "":
			p.HTML = string(body)
		default:
			p.Attachments = append(p.Attachments, attachment{Index: n, Filename: fileName(part), Type: typ, Size: len(body)})
		}
		return nil
	})
	if err != nil {
		p.Err = fmt.Sprintf("part of the body cannot be read: %v", err)
	}
	return p
}

// part returns the body (decoded from its transfer encoding) and type of the index-th leaf part,
// numbered as parse numbers attachments, and the file name it gives.
func part(data []byte, index int) (body []byte, typ, filename string, ok bool) {
	e, _ := gomessage.Read(bytes.NewReader(data))
	if e == nil {
		return nil, "", "", false
	}
	n := 0
	_ = e.Walk(func(_ []int, p *gomessage.Entity, err error) error {
		if err != nil && !gomessage.IsUnknownCharset(err) {
			return err
		}
		if p.MultipartReader() != nil {
			return nil
		}
		if n++; n != index {
			return nil
		}
		body, _ = io.ReadAll(io.LimitReader(p.Body, maxPart))
		typ, _, _ = p.Header.ContentType()
		filename = fileName(p)
		ok = true
		return io.EOF // found: stop walking
	})
	return body, typ, filename, ok
}

// fileName is the name a part gives itself (Content-Disposition's filename, else Content-Type's
// name) without any directory: the sender chooses it, and a download must land where the user
// saves it, not at "../../.bashrc".
func fileName(p *gomessage.Entity) string {
	_, dparams, _ := p.Header.ContentDisposition()
	name := dparams["filename"]
	if name == "" {
		_, cparams, _ := p.Header.ContentType()
		name = cparams["name"]
	}
	name = strings.TrimSpace(name)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if name == "." || name == ".." {
		return ""
	}
	return name
}
