package webui_test

import (
	"crypto/tls"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/webui"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// report is a message as a mail client sends one: text and HTML alternatives (the HTML with a
// script and a remote image) and a CSV attachment, with an encoded-word subject.
const report = "From: Alice Smith <alice@contoso.test>\r\n" +
	"To: bob@contoso.test\r\n" +
	"Subject: =?utf-8?q?Quarterly_r=C3=A9port?=\r\n" +
	"Date: Mon, 30 Nov 2026 09:00:00 +0000\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=outer\r\n" +
	"\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=inner\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Figures are up 12 percent.\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<p>Figures are <b>up</b>.</p><script>alert('pwned')</script><img src=\"https://tracker.example/p.gif\">\r\n" +
	"--inner--\r\n" +
	"--outer\r\n" +
	"Content-Type: text/csv; name=report.csv\r\n" +
	"Content-Disposition: attachment; filename=report.csv\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"cXVhcnRlcixyZXZlbnVlCjMsMTIK\r\n" +
	"--outer--\r\n"

type site struct {
	t   *testing.T
	url string // the page's base, ending in a slash
	c   *http.Client
}

// get fetches path under the page and returns the response (body read) and its body.
func (s site) get(path string) (*http.Response, string) {
	s.t.Helper()
	resp, err := s.c.Get(s.url + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	return resp, string(b)
}

// link is the first href or src of page matching re, unescaped.
func link(t *testing.T, page, re string) string {
	t.Helper()
	m := regexp.MustCompile(`(?:href|src)="(` + re + `)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no link matching %s in:\n%s", re, page)
	}
	return html.UnescapeString(m[1])
}

func mustContain(t *testing.T, what, page string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, page)
		}
	}
}

// start runs an emulator with a delivered report and a refused IMAP login, and serves the page
// mounted as the control API mounts it.
func start(t *testing.T) (site, *emulatortest.Lab) {
	lab := emulatortest.Start(t, emulator.Options{})
	if got := exchange.Deliver(lab.E.World(), lab.E.Store, lab.E.Events, "", []string{world.Bob}, []byte(report)); len(got) != 1 {
		t.Fatalf("delivered to %v", got)
	}
	c, err := imapclient.DialTLS(lab.E.MailAddrs["imap"], &imapclient.Options{TLSConfig: &tls.Config{RootCAs: lab.E.CAPool()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(world.Bob, "bob-password").Wait(); err == nil {
		t.Fatal("Exchange accepted an IMAP login with a password")
	}
	c.Close()
	mux := http.NewServeMux()
	mux.Handle("/_emulator/ui/", http.StripPrefix("/_emulator/ui", webui.Handler(webui.Config{
		Store: lab.E.Store, World: lab.E.Live, Events: lab.E.Events,
	})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return site{t, srv.URL + "/_emulator/ui/", srv.Client()}, lab
}

// TestMailboxesAndMessage: the index lists each tenant's mailboxes, the mailbox its messages, and the
// message view its headers, text body and attachment; the HTML body is never part of the page, and
// is served sandboxed with no script and no remote content.
func TestMailboxesAndMessage(t *testing.T) {
	t.Parallel()
	s, _ := start(t)
	resp, index := s.get("")
	mustContain(t, "the index", index, "Contoso", "alice@contoso.test", "support@contoso.test", "shared")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("the page's policy %q allows script", csp)
	}
	if !regexp.MustCompile(`bob@contoso.test</a></td><td>Bob Jones</td><td></td><td class="num">1</td>`).MatchString(index) {
		t.Errorf("the index does not show bob's one message:\n%s", index)
	}

	_, box := s.get(link(t, index, `mailbox\?address=bob%40contoso.test`))
	mustContain(t, "bob's INBOX", box, "Quarterly réport", "Alice Smith &lt;alice@contoso.test&gt;", "2026-11-30 09:00:00Z", "INBOX (1)")

	_, msg := s.get(link(t, box, `message\?[^"]+`))
	mustContain(t, "the message view", msg, "<h1>Quarterly réport</h1>", "Figures are up 12 percent.",
		"report.csv", "text/csv", `<iframe sandbox=""`)
	if strings.Contains(msg, "<script>") || strings.Contains(msg, "tracker.example") {
		t.Errorf("the message view carries the HTML body's script or image:\n%s", msg)
	}

	resp, body := s.get(link(t, msg, `message/html\?[^"]+`))
	mustContain(t, "the HTML body", body, "<b>up</b>")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox;") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script") {
		t.Errorf("the HTML body's policy %q does not sandbox it without script", csp)
	}

	resp, csv := s.get(link(t, msg, `message/part\?[^"]+`))
	if csv != "quarter,revenue\n3,12\n" || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		resp.Header.Get("Content-Disposition") != "attachment; filename=report.csv" {
		t.Errorf("the attachment: %q %s, %s", csv, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	_, raw := s.get(link(t, msg, `message/raw\?[^"]+`))
	if raw != report {
		t.Errorf("the raw message differs from the one delivered")
	}
}

// TestEventLog: the log lists the refused login with Exchange's reason, newest first, and the kind
// filter narrows it; the page refuses anything but reading.
func TestEventLog(t *testing.T) {
	t.Parallel()
	s, lab := start(t)
	_, page := s.get("events")
	refused := lab.E.Events.Since(0, nil, 0)[1]
	if refused.Kind != "auth.refused" || refused.Reason == "" {
		t.Fatalf("the second event is %+v, want the refused IMAP login", refused)
	}
	mustContain(t, "the event log", page, "auth.refused", "imap", "bob@contoso.test", html.EscapeString(refused.Code),
		html.EscapeString(refused.Reason), "message.delivered")
	if strings.Index(page, "auth.refused</td>") > strings.Index(page, "message.delivered</td>") {
		t.Errorf("the event log is not newest first:\n%s", page)
	}
	_, only := s.get("events?kind=message.delivered")
	if strings.Contains(only, "auth.refused</td>") || !strings.Contains(only, "message.delivered</td>") {
		t.Errorf("kind=message.delivered shows:\n%s", only)
	}
	mustContain(t, "the filtered log", only, "<option selected>message.delivered</option>")

	resp, err := s.c.Post(s.url+"events", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s", resp.Status)
	}
}

// TestAttachmentNamesWithoutDirectories: an attachment's download and its row on the page use the
// name the part gives (Content-Disposition's filename, else Content-Type's name) without the
// directories a sender may have put in it.
func TestAttachmentNamesWithoutDirectories(t *testing.T) {
	t.Parallel()
	s, lab := start(t)
	msg := "From: x@fabrikam.test\r\nTo: alice@contoso.test\r\nSubject: names\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nsee files\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"../../.bashrc\"\r\n\r\nrc\r\n" +
		"--b\r\nContent-Type: application/pdf; name=\"..\\\\..\\\\invoice.pdf\"\r\n\r\npdf\r\n" +
		"--b--\r\n"
	if got := exchange.Deliver(lab.E.World(), lab.E.Store, lab.E.Events, "", []string{world.Alice}, []byte(msg)); len(got) != 1 {
		t.Fatalf("delivered to %v", got)
	}
	_, box := s.get("mailbox?address=alice%40contoso.test")
	_, page := s.get(link(t, box, `message\?[^"]+`))
	for n, want := range map[string]string{"2": ".bashrc", "3": "invoice.pdf"} {
		if !strings.Contains(page, "&amp;n="+n+`">`+want+"</a>") {
			t.Errorf("part %s is not listed as %s:\n%s", n, want, page)
		}
		resp, _ := s.get(html.UnescapeString(link(t, page, `message/part\?[^"]+&amp;n=`+n)))
		if got := resp.Header.Get("Content-Disposition"); got != "attachment; filename="+want && got != `attachment; filename="`+want+`"` {
			t.Errorf("part %s downloads as %q, want %s", n, got, want)
		}
	}
}
