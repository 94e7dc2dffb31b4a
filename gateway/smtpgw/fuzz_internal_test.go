package smtpgw

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// FuzzEnvelopeHeaders: whatever the message and the envelope, envelopeHeaders either refuses or
// gives a message of the size it says whose To, Cc and Bcc name only envelope recipients, with the
// body as it came.
func FuzzEnvelopeHeaders(f *testing.F) {
	f.Add([]byte("To: bob@x.test\r\nBcc: dave@x.test\r\nSubject: hi\r\n\r\nbody\r\n"), "bob@x.test carol@x.test")
	f.Add([]byte("Subject: no recipients\n\nbody"), "carol@x.test")
	f.Add([]byte("To: Bob <bob@x.test>, carol@x.test\r\nCc: =?utf-8?q?D=C3=A9?= <dave@x.test>\r\n\r\n"), "dave@x.test bob@x.test carol@x.test")
	f.Add([]byte(" folded first line\r\n\r\n"), "a@b")
	f.Fuzz(func(t *testing.T, data []byte, envelope string) {
		var rcpts []string
		for _, r := range strings.Fields(envelope) {
			if validRecipient(r) { // as Rcpt takes them
				rcpts = append(rcpts, r)
			}
		}
		sp := &spooled{ReaderAt: bytes.NewReader(data), size: int64(len(data))}
		r, size, err := envelopeHeaders(sp, rcpts)
		if err != nil {
			return
		}
		out, err := io.ReadAll(r)
		if err != nil || int64(len(out)) != size {
			t.Fatalf("read %d bytes (%v), said %d", len(out), err, size)
		}
		in := map[string]bool{}
		for _, r := range rcpts {
			in[strings.ToLower(r)] = true
		}
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(out)))
		if err != nil && err != io.EOF {
			t.Fatalf("the result's header does not read: %v\n%q", err, out)
		}
		mh := mail.Header{Header: message.Header{Header: h}}
		for _, k := range []string{"To", "Cc", "Bcc"} {
			list, err := mh.AddressList(k)
			if err != nil {
				t.Fatalf("the result's %s does not read: %v", k, err)
			}
			for _, a := range list {
				if !in[strings.ToLower(a.Address)] {
					t.Fatalf("%s names %s, not an envelope recipient %v", k, a.Address, rcpts)
				}
			}
		}
	})
}
