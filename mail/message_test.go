package mail

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestBuildParseRoundTrip(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 300<<10)
	rand.Read(big)
	bigPath := filepath.Join(dir, "données.bin")
	smallPath := filepath.Join(dir, "Grüße 日本.txt")
	os.WriteFile(bigPath, big, 0o600)
	os.WriteFile(smallPath, []byte("hello\nworld\n"), 0o600)

	raw, err := Build(Draft{
		From: []string{"Alice Smith <alice@contoso.test>"}, To: []string{"bob@contoso.test, carol@contoso.test"},
		Cc: []string{"dave@contoso.test"}, Bcc: []string{"eve@contoso.test"},
		Subject: "Rapport trimestriel — Grüße 日本", Text: "Bonjour,\nvoici le rapport.\n",
		Attachments: attachFiles(t, bigPath, smallPath),
	})
	if err != nil {
		t.Fatal(err)
	}
	head := string(raw[:bytes.Index(raw, []byte("\r\n\r\n"))])
	if !isASCII([]byte(head)) {
		t.Errorf("header not ASCII:\n%s", head)
	}
	// A Bcc field, not the letters "bcc" (a random boundary or Message-ID may hold them).
	if strings.Contains(head, "eve@") || regexp.MustCompile(`(?mi)^bcc:`).MatchString(head) {
		t.Error("Bcc written into the message")
	}
	if !strings.Contains(head, "=?utf-8?") {
		t.Errorf("subject not RFC 2047-encoded:\n%s", head)
	}
	if !strings.Contains(string(raw), "filename*=utf-8''") {
		t.Error("file name not RFC 2231-encoded")
	}
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Rapport trimestriel — Grüße 日本" || m.From != "Alice Smith <alice@contoso.test>" ||
		len(m.To) != 2 || len(m.Cc) != 1 || m.Text != "Bonjour,\r\nvoici le rapport.\r\n" || m.Date.IsZero() {
		t.Errorf("parsed %+v", m.Summary)
	}
	if len(m.Attachments) != 2 || !m.HasAttachments {
		t.Fatalf("attachments: %d", len(m.Attachments))
	}
	if a := m.Attachments[0]; a.Name != "données.bin" || !bytes.Equal(a.Data, big) || a.ContentType != "application/octet-stream" {
		t.Errorf("big attachment: %q %s %d bytes", a.Name, a.ContentType, len(a.Data))
	}
	if a := m.Attachments[1]; a.Name != "Grüße 日本.txt" || string(a.Data) != "hello\nworld\n" || !strings.HasPrefix(a.ContentType, "text/plain") {
		t.Errorf("small attachment: %q %s %q", a.Name, a.ContentType, a.Data)
	}

	// HTML, no attachments: a single part.
	raw, err = Build(Draft{From: []string{"alice@contoso.test"}, To: []string{"bob@contoso.test"}, Subject: "hi", Text: "<p>é</p>", HTML: true})
	if err != nil {
		t.Fatal(err)
	}
	if m, err = Parse(raw); err != nil || m.HTML != "<p>é</p>" || m.Text != "" || m.HasAttachments {
		t.Fatalf("html: %v %+v", err, m)
	}
}

// attachFiles reads files as attachments, as the CLI's --attach does.
func attachFiles(t testing.TB, paths ...string) []Attachment {
	t.Helper()
	var out []Attachment
	for _, p := range paths {
		a, err := AttachFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// TestBuildInMemoryAttachments: attachments given as bytes, with a content type or with the one their
// name suggests, read back with their names, types and bytes; one without a name is refused.
func TestBuildInMemoryAttachments(t *testing.T) {
	csv := []byte("when,what\r\n2026-12-06,report\r\n")
	pdf := []byte("%PDF-1.7 not really\x00\xff")
	raw, err := Build(Draft{From: []string{"alice@contoso.test"}, To: []string{"bob@contoso.test"}, Subject: "in memory", Text: "see attached",
		Attachments: []Attachment{
			{Name: "report.csv", ContentType: "text/csv", Data: csv},
			{Name: "scan.pdf", Data: pdf},
			{Name: "blob", Data: []byte{1, 2, 3}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, ctype string
		data        []byte
	}{{"report.csv", "text/csv", csv}, {"scan.pdf", "application/pdf", pdf}, {"blob", "application/octet-stream", []byte{1, 2, 3}}}
	if len(m.Attachments) != len(want) {
		t.Fatalf("%d attachments read back, want %d", len(m.Attachments), len(want))
	}
	for i, w := range want {
		a := m.Attachments[i]
		if a.Name != w.name || !strings.HasPrefix(a.ContentType, w.ctype) || !bytes.Equal(a.Data, w.data) {
			t.Errorf("attachment %d: %q %s %q; want %q %s %q", i, a.Name, a.ContentType, a.Data, w.name, w.ctype, w.data)
		}
	}
	_, err = Build(Draft{From: []string{"a@x.test"}, To: []string{"b@x.test"}, Attachments: []Attachment{{Data: csv}}})
	if err == nil || !strings.Contains(err.Error(), "no Name") {
		t.Errorf("an attachment without a name: %v", err)
	}
}

func TestAttachMissingFile(t *testing.T) {
	_, err := AttachFile("/nonexistent/report.pdf")
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "cannot attach /nonexistent/report.pdf: no such file or directory" {
		t.Fatalf("got %v", err)
	}
	if _, err := Build(Draft{From: []string{"a@x.test"}, To: []string{"not an address"}}); err == nil {
		t.Fatal("a bad address was accepted")
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"../../etc/passwd":    "passwd",
		`..\..\windows\x.dll`: "x.dll",
		"..":                  "attachment",
		"":                    "attachment",
		"/":                   "attachment",
		".bashrc":             "bashrc",
		"a\x00b\nc.txt":       "abc.txt",
		"Grüße 日本.txt":        "Grüße 日本.txt",
		"dir/":                "attachment",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
	if n := safeName(strings.Repeat("é", 300)); len(n) > maxNameBytes || !strings.HasPrefix(n, "é") || strings.ContainsRune(n, '\uFFFD') {
		t.Errorf("long name cut badly: %d bytes", len(n))
	}
}

func TestSaveAttachmentsNeverOverwritesNorEscapes(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "report.pdf"), []byte("mine"), 0o600)
	os.WriteFile(filepath.Join(parent, "passwd"), []byte("precious"), 0o600)
	// A symbolic link in dir pointing outside must not be followed.
	os.Symlink(filepath.Join(parent, "passwd"), filepath.Join(dir, "link"))

	msg := &Message{Attachments: []Attachment{
		{Name: "report.pdf", Data: []byte("one")},
		{Name: "report.pdf", Data: []byte("two")},
		{Name: "../passwd", Data: []byte("evil")},
		{Name: "../../../../../../tmp/x", Data: []byte("x")},
		{Name: "link", Data: []byte("through the link")},
		{Name: "日本語.txt", Data: []byte("ok")},
	}}
	paths, err := SaveAttachments(msg, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"report (1).pdf", "report (2).pdf", "passwd", "x", "link (1)", "日本語.txt"}
	for i, w := range want {
		if filepath.Base(paths[i]) != w || filepath.Dir(paths[i]) != dir {
			t.Errorf("attachment %d saved as %s, want %s in %s", i, paths[i], w, dir)
		}
		got, _ := os.ReadFile(paths[i])
		if !bytes.Equal(got, msg.Attachments[i].Data) {
			t.Errorf("%s: %q", paths[i], got)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "report.pdf")); string(b) != "mine" {
		t.Error("an existing file was overwritten")
	}
	if b, _ := os.ReadFile(filepath.Join(parent, "passwd")); string(b) != "precious" {
		t.Error("a file outside the directory was written")
	}
	if _, err := SaveAttachments(msg, filepath.Join(parent, "missing")); err == nil {
		t.Error("a missing directory was not an error")
	}
}

func TestPrepare(t *testing.T) {
	in := "From: alice@contoso.test\nTo: Bob <bob@contoso.test>\nCc: carol@contoso.test\nBcc: eve@contoso.test\nSubject: cron\n\nline 1\nline 2\n"
	out, env, err := Prepare([]byte(in), Submission{From: "alice@contoso.test", ExtractRecipients: true, Recipients: []string{"zed@contoso.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(env.To, ",") != "zed@contoso.test,bob@contoso.test,carol@contoso.test,eve@contoso.test" || env.From != "alice@contoso.test" {
		t.Errorf("envelope %+v", env)
	}
	s := string(out)
	if strings.Contains(s, "eve@") || !strings.Contains(s, "Message-Id:") || !strings.Contains(s, "Date:") ||
		!strings.HasSuffix(s, "\r\n\r\nline 1\r\nline 2\r\n") || strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") {
		t.Errorf("prepared:\n%q", s)
	}
	for _, bad := range []string{"", "   \n", "this is not a header\n\nbody\n", "\nbody only\n", "From: a@x.test\nTo: <<<\n\nx\n"} {
		if _, _, err := Prepare([]byte(bad), Submission{From: "a@x.test", ExtractRecipients: true}); !errors.Is(err, ErrMalformed) {
			t.Errorf("Prepare(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	raw, _ := Build(Draft{From: []string{"a@x.test"}, To: []string{"b@x.test"}, Subject: "é", Text: "hi"})
	f.Add(raw)
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Disposition: attachment; filename*=utf-8''%2e%2e%2fa\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n--x--\r\n"))
	f.Add([]byte("Subject: =?utf-8?q?=C3=A9?=\r\n\r\nbody"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n--a--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if m.Size != int64(len(raw)) || !bytes.Equal(m.Raw, raw) {
			t.Fatal("raw not kept")
		}
		for _, a := range m.Attachments {
			n := safeName(a.Name)
			if n == "" || strings.ContainsAny(n, `/\`) || n == ".." || n == "." || !filepath.IsLocal(n) {
				t.Fatalf("unsafe name %q from %q", n, a.Name)
			}
		}
	})
}

func TestParseHeaderGuessesAttachments(t *testing.T) {
	s, err := parseHeader([]byte("From: Alice <alice@contoso.test>\r\nSubject: =?utf-8?q?R=C3=A9sum=C3=A9?=\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"))
	if err != nil || s.Subject != "Résumé" || s.From != "Alice <alice@contoso.test>" && s.From != "alice@contoso.test" || !s.HasAttachments {
		t.Fatalf("%+v %v", s, err)
	}
	if s, _ := parseHeader([]byte("Subject: plain\r\nContent-Type: text/plain\r\n\r\n")); s.HasAttachments {
		t.Fatal("a text/plain message guessed to have attachments")
	}
}
