package smtpgw

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
)

// spoolInMemory is the largest message kept in memory; larger ones go to a temporary file.
const spoolInMemory = 1 << 20

// maxHeader bounds a message's header section.
const maxHeader = 1 << 20

// spooled is a message as received: in memory, or in a 0600 temporary file.
type spooled struct {
	io.ReaderAt
	size     int64
	f        *os.File
	unlinked bool
}

// spool reads a message (go-smtp bounds its size) into memory or, past spoolInMemory, a file.
func spool(r io.Reader, dir string) (*spooled, error) {
	head, err := io.ReadAll(io.LimitReader(r, spoolInMemory+1))
	if err != nil {
		return nil, err
	}
	if len(head) <= spoolInMemory {
		return &spooled{ReaderAt: bytes.NewReader(head), size: int64(len(head))}, nil
	}
	f, err := os.CreateTemp(dir, "mailoauth-smtp-*.eml") // 0600
	if err != nil {
		return nil, err
	}
	// Unlinked at once where the system allows it (not Windows), so that nothing stays behind even
	// if the process dies; else at Close.
	sp := &spooled{ReaderAt: f, f: f, unlinked: os.Remove(f.Name()) == nil}
	n, err := io.Copy(f, io.MultiReader(bytes.NewReader(head), r))
	sp.size = n
	if err != nil {
		sp.Close()
		return nil, err
	}
	return sp, nil
}

// Close removes the file, if any.
func (sp *spooled) Close() {
	if sp.f != nil {
		_ = sp.f.Close()
		if !sp.unlinked {
			_ = os.Remove(sp.f.Name())
		}
	}
}

var errHeaderRecipient = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}}

// envelopeHeaders returns the message to give Graph: its header with the envelope's recipients
// that To and Cc do not name as Bcc (any Bcc the program left replaced), and its size. Graph sends
// to every address of To, Cc and Bcc, so a To or Cc address the envelope leaves out is refused:
// sending the message would reach someone the program did not send it to. Exchange reads a MIME
// Bcc header as Bcc recipients and never writes it into the message it delivers over SMTP
// ([MS-OXCMAIL] 2.1.3.1.1.2 "Bcc Recipients",
// https://learn.microsoft.com/openspecs/exchange_server_protocols/ms-oxcmail/db4548ad-9075-415d-876a-0b88d1a8852e).
func envelopeHeaders(sp *spooled, rcpts []string) (io.Reader, int64, error) {
	cr := &countingReader{r: io.NewSectionReader(sp, 0, min(sp.size, maxHeader))}
	br := bufio.NewReader(cr)
	h, err := textproto.ReadHeader(br)
	if errors.Is(err, io.EOF) && sp.size <= maxHeader {
		err = nil // a header without a body
	}
	if err != nil {
		return nil, 0, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: "The message's header cannot be read (RFC 5322 header fields, then an empty line): " + safe(err.Error())}
	}
	bodyAt := cr.n - int64(br.Buffered())
	mh := mail.Header{Header: message.Header{Header: h}}
	envelope := map[string]bool{}
	for _, r := range rcpts {
		envelope[strings.ToLower(r)] = true
	}
	named := map[string]bool{}
	for _, k := range []string{"To", "Cc"} {
		list, err := mh.AddressList(k)
		if err != nil {
			return nil, 0, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
				Message: "The message's " + k + " header cannot be read as addresses: " + safe(err.Error())}
		}
		for _, a := range list {
			if !envelope[strings.ToLower(a.Address)] {
				e := *errHeaderRecipient
				e.Message = fmt.Sprintf("The message's %s names %s, which is not among the RCPT TO recipients: Microsoft Graph sends to every To and Cc address, so send it with every one of them as a recipient", k, safe(a.Address))
				return nil, 0, &e
			}
			named[strings.ToLower(a.Address)] = true
		}
	}
	var bcc []*mail.Address
	seen := map[string]bool{}
	for _, r := range rcpts {
		if l := strings.ToLower(r); !named[l] && !seen[l] {
			seen[l] = true
			bcc = append(bcc, &mail.Address{Address: r})
		}
	}
	mh.Del("Bcc")
	if len(bcc) > 0 {
		mh.SetAddressList("Bcc", bcc)
	}
	var head bytes.Buffer
	if err := textproto.WriteHeader(&head, mh.Header.Header); err != nil {
		return nil, 0, err
	}
	body := io.NewSectionReader(sp, bodyAt, sp.size-bodyAt)
	return io.MultiReader(&head, body), int64(head.Len()) + sp.size - bodyAt, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// safe makes text from elsewhere (Graph, a parser) fit an SMTP reply: printable ASCII on one line,
// at most 300 characters.
func safe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:297] + "..."
	}
	return s
}
