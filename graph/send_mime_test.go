package graph_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/graph"
)

// TestParseMIME: what the draft path keeps of a message — addresses, the HTML alternative over the
// text one, attachments decoded with their names, an inline image marked inline — and a header it
// cannot read is ErrMIMEInvalid.
func TestParseMIME(t *testing.T) {
	raw := strings.ReplaceAll(`From: Alice <alice@contoso.test>
To: Bob <bob@contoso.test>, carol@contoso.test
Cc: dave@contoso.test
Bcc: erin@contoso.test
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="m"

--m
Content-Type: multipart/alternative; boundary="a"

--a
Content-Type: text/plain; charset=utf-8

plain words
--a
Content-Type: text/html; charset=utf-8

<p>html words</p>
--a--
--m
Content-Type: image/png; name="logo.png"
Content-Disposition: inline; filename="logo.png"
Content-ID: <logo>
Content-Transfer-Encoding: base64

iVBORw0K
--m
Content-Type: application/pdf
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQ=
--m--
`, "\n", "\r\n")
	m, err := graph.ParseMIME(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Grüße" || m.From == nil || m.From.Address != "alice@contoso.test" || m.From.Name != "Alice" {
		t.Errorf("subject %q, from %+v", m.Subject, m.From)
	}
	if len(m.To) != 2 || m.To[0].Address != "bob@contoso.test" || len(m.Cc) != 1 || len(m.Bcc) != 1 || m.Bcc[0].Address != "erin@contoso.test" {
		t.Errorf("to %+v cc %+v bcc %+v", m.To, m.Cc, m.Bcc)
	}
	if !m.HTML || !strings.Contains(m.Body, "html words") {
		t.Errorf("body %q (HTML %v), want the HTML alternative", m.Body, m.HTML)
	}
	if len(m.Attachments) != 2 {
		t.Fatalf("%d attachments, want 2", len(m.Attachments))
	}
	logo, pdf := m.Attachments[0], m.Attachments[1]
	if logo.Name != "logo.png" || !logo.IsInline || logo.ContentType != "image/png" || string(logo.Content) != "\x89PNG\r\n" {
		t.Errorf("inline image %+v", logo)
	}
	if pdf.Name != "report.pdf" || pdf.IsInline || string(pdf.Content) != "%PDF-1.4" {
		t.Errorf("attachment %+v", pdf)
	}

	text, err := graph.ParseMIME(strings.NewReader("To: bob@contoso.test\r\nSubject: t\r\n\r\njust text\r\n"))
	if err != nil || text.HTML || strings.TrimSpace(text.Body) != "just text" || len(text.Attachments) != 0 {
		t.Errorf("a text message: %+v, %v", text, err)
	}
	if _, err := graph.ParseMIME(strings.NewReader("To: <<<\r\n\r\nx")); !errors.Is(err, graph.ErrMIMEInvalid) {
		t.Errorf("an unreadable To: %v, want ErrMIMEInvalid", err)
	}
}
