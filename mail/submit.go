package mail

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Submission is how a message handed over as sendmail's standard input is to be sent.
type Submission struct {
	From string // envelope sender; also the From header when the message has none
	// ExtractRecipients takes the recipients from To, Cc and Bcc (sendmail -t) and removes Bcc.
	ExtractRecipients bool
	Recipients        []string // given on the command line
}

// Prepare checks that raw is an RFC 5322 message (a header of fields, a blank line, a body), gives it
// CRLF line ends, adds From, Date and Message-ID when missing (as sendmail does), and removes Bcc when
// recipients are taken from the header. It returns the message to send and its envelope. Its errors
// wrap ErrMalformed and say what is wrong in one sentence.
func Prepare(raw []byte, s Submission) ([]byte, Envelope, error) {
	env := Envelope{From: s.From}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, env, fmt.Errorf("%w: the message is empty", ErrMalformed)
	}
	raw = normalizeCRLF(raw)
	br := bufio.NewReader(bytes.NewReader(raw))
	th, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, env, fmt.Errorf("%w: %s; it must start with header fields such as \"Subject: ...\", then a blank line, then the body", ErrMalformed, badHeaderLine(raw))
	}
	if th.Len() == 0 {
		return nil, env, fmt.Errorf("%w: it has no header fields; it must start with header fields such as \"Subject: ...\", then a blank line, then the body", ErrMalformed)
	}
	body, _ := io.ReadAll(br)
	h := gomail.Header{Header: message.Header{Header: th}}
	rcpts := append([]string(nil), s.Recipients...)
	if s.ExtractRecipients {
		for _, k := range []string{"To", "Cc", "Bcc"} {
			if !h.Has(k) {
				continue
			}
			list, err := h.AddressList(k)
			if err != nil {
				return nil, env, fmt.Errorf("%w: its %s header is not a list of addresses (%v)", ErrMalformed, k, err)
			}
			for _, a := range list {
				rcpts = append(rcpts, a.Address)
			}
		}
		h.Del("Bcc")
	}
	if !h.Has("From") {
		if s.From == "" {
			return nil, env, fmt.Errorf("%w: it has no From header and no sender was given (-f)", ErrMalformed)
		}
		h.SetAddressList("From", []*gomail.Address{{Address: s.From}})
	} else if _, err := h.AddressList("From"); err != nil {
		return nil, env, fmt.Errorf("%w: its From header is not an address (%v)", ErrMalformed, err)
	}
	if !h.Has("Date") {
		h.SetDate(time.Now())
	}
	if !h.Has("Message-Id") {
		if err := h.GenerateMessageID(); err != nil {
			return nil, env, err
		}
	}
	env.To = dedupe(rcpts)
	var out bytes.Buffer
	if err := textproto.WriteHeader(&out, h.Header.Header); err != nil {
		return nil, env, err
	}
	out.Write(body)
	return out.Bytes(), env, nil
}

func normalizeCRLF(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) || (!bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\n"))) {
		return b
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range list {
		k := strings.ToLower(strings.TrimSpace(a))
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, strings.TrimSpace(a))
	}
	return out
}

// badHeaderLine says which line of a header that did not parse is wrong.
func badHeaderLine(raw []byte) string {
	for i, line := range strings.Split(string(raw), "\r\n") {
		if line == "" {
			break
		}
		if i > 0 && (line[0] == ' ' || line[0] == '\t') {
			continue // a continuation
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			return fmt.Sprintf("line %d is not a header field (%.60q)", i+1, line)
		}
	}
	return "its header does not parse"
}
