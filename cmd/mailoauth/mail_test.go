package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// runCLIStdin runs the CLI with stdin.
func runCLIStdin(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

type listed struct {
	ID             string    `json:"id"`
	Folder         string    `json:"folder"`
	Subject        string    `json:"subject"`
	From           string    `json:"from"`
	To             []string  `json:"to"`
	Date           string    `json:"date"`
	Size           int64     `json:"size"`
	Unread         bool      `json:"unread"`
	HasAttachments bool      `json:"has_attachments"`
	Extra          *struct{} `json:"-"`
}

// TestSendAndReadMail: the daemon app sends as alice to bob (send and sendmail -t), bob's mailbox is
// read through daemon-bob over IMAP and POP3, attachments come back byte-identical, and move and
// delete do what they say.
func TestSendAndReadMail(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	cli := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		return runCLIStdin(t, stdin, append([]string{"--config", cfg}, args...)...)
	}
	list := func(args ...string) []listed {
		t.Helper()
		code, out, errs := cli("", append([]string{"mail", "list", "daemon-bob", "--json"}, args...)...)
		if code != exitOK {
			t.Fatalf("mail list %v: exit %d: %s", args, code, errs)
		}
		var raw []map[string]any
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatalf("mail list --json is not a JSON array: %q", out)
		}
		keys := []string{"id", "subject", "from", "date", "size", "to", "unread", "has_attachments"}
		if slices.Contains(args, "pop") {
			keys = slices.DeleteFunc(keys, func(k string) bool { return k == "unread" }) // POP3 has no read state
		}
		for _, o := range raw {
			for _, k := range keys {
				if _, ok := o[k]; !ok {
					t.Errorf("mail list --json: no %q in %v", k, o)
				}
			}
		}
		var l []listed
		json.Unmarshal([]byte(out), &l)
		return l
	}

	dir := t.TempDir()
	big := make([]byte, 300<<10)
	rand.Read(big)
	const bigName = "Données annuelles 日本.bin"
	bigPath := filepath.Join(dir, bigName)
	os.WriteFile(bigPath, big, 0o600)
	const subject = "Rapport — Grüße aus Köln"

	code, out, errs := cli("", "send", "daemon", "--to", world.Bob, "--subject", subject, "--body", "Hello Bob,\nsee attached.\n", "--attach", bigPath)
	if code != exitOK || !strings.Contains(out, "Sent from alice@contoso.test to bob@contoso.test over SMTP") || errs != "" {
		t.Fatalf("send: exit %d, %q, %q", code, out, errs)
	}

	// sendmail -t, as cron would run it: LF line ends, a Bcc to strip.
	stdin := "From: alice@contoso.test\nTo: Bob Jones <bob@contoso.test>\nBcc: bob@contoso.test\nSubject: cron output\n\nall good\n"
	if code, out, errs := cli(stdin, "sendmail", "-t", "-i", "--account", "daemon"); code != exitOK || out != "" || errs != "" {
		t.Fatalf("sendmail -t: exit %d, %q, %q", code, out, errs)
	}

	msgs := list()
	if len(msgs) != 2 || msgs[0].Subject != "cron output" || msgs[1].Subject != subject || !msgs[1].HasAttachments || msgs[0].HasAttachments ||
		msgs[1].From != world.Alice || !msgs[1].Unread || msgs[1].Size < 300<<10 {
		t.Fatalf("mail list: %+v", msgs)
	}
	if l := list("--limit", "1"); len(l) != 1 || l[0].ID != msgs[0].ID {
		t.Errorf("--limit 1: %+v", l)
	}
	popMsgs := list("--via", "pop")
	if len(popMsgs) != 2 || popMsgs[1].Subject != subject || popMsgs[0].Subject != "cron output" {
		t.Fatalf("mail list --via pop: %+v", popMsgs)
	}
	// POP3 has no read state: the list does not claim one (IMAP's does say it).
	if _, out, _ := cli("", "--json", "mail", "list", "daemon-bob", "--via", "pop"); strings.Contains(out, `"unread"`) {
		t.Errorf("mail list --via pop --json claims a read state: %s", out)
	}
	if _, out, _ := cli("", "mail", "list", "daemon-bob", "--via", "pop"); strings.Contains(out, "unread") {
		t.Errorf("mail list --via pop claims a read state: %s", out)
	}
	if _, out, _ := cli("", "--json", "mail", "list", "daemon-bob"); !strings.Contains(out, `"unread":true`) {
		t.Errorf("mail list --json over IMAP lacks unread: %s", out)
	}
	if _, out, errs := cli("", "--json", "mail", "get", "daemon-bob", popMsgs[1].ID, "--via", "pop"); strings.Contains(out, `"unread"`) || !strings.Contains(out, `"subject":"`+subject) {
		t.Errorf("mail get --via pop --json claims a read state, or is not the message: %s %s", out, errs)
	}
	if _, out, _ := cli("", "--json", "mail", "get", "daemon-bob", msgs[1].ID); !strings.Contains(out, `"unread":true`) || !strings.Contains(out, `"to":[`) {
		t.Errorf("mail get --json over IMAP lacks unread or to: %s", out)
	}

	// The raw message is the same over IMAP and POP3; the sendmail one lost its Bcc.
	_, rawIMAP, _ := cli("", "mail", "get", "daemon-bob", msgs[1].ID, "--raw")
	_, rawPOP, _ := cli("", "mail", "get", "daemon-bob", popMsgs[1].ID, "--raw", "--via", "pop")
	if rawIMAP == "" || rawIMAP != rawPOP || !strings.Contains(rawIMAP, "filename*=utf-8''") {
		t.Errorf("raw over IMAP (%d bytes) and POP3 (%d bytes) differ or lack the RFC 2231 name", len(rawIMAP), len(rawPOP))
	}
	if _, cron, _ := cli("", "mail", "get", "daemon-bob", msgs[0].ID, "--raw"); regexp.MustCompile(`(?mi)^bcc:`).MatchString(cron) || !strings.Contains(cron, "\r\n\r\nall good\r\n") {
		t.Errorf("sendmail's message as delivered: %q", cron)
	}

	// Save the attachment twice over each transport: byte-identical, never overwriting.
	saveDir := t.TempDir()
	os.WriteFile(filepath.Join(saveDir, bigName), []byte("already here"), 0o600)
	for i, via := range []string{"imap", "pop"} {
		id := msgs[1].ID
		if via == "pop" {
			id = popMsgs[1].ID
		}
		code, out, errs := cli("", "mail", "get", "daemon-bob", id, "--via", via, "--save-attachments", saveDir)
		want := filepath.Join(saveDir, "Données annuelles 日本 ("+string(rune('1'+i))+").bin")
		if code != exitOK || !strings.Contains(out, "Subject: "+subject) || !strings.Contains(out, "saved as "+want) || !strings.Contains(out, "Hello Bob,\nsee attached.") {
			t.Fatalf("get --via %s: exit %d, %q, %q", via, code, out, errs)
		}
		if got, _ := os.ReadFile(want); !bytes.Equal(got, big) {
			t.Errorf("%s: the saved attachment differs from the file sent", via)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(saveDir, bigName)); string(b) != "already here" {
		t.Error("an existing file was overwritten")
	}
	code, out, _ = cli("", "mail", "get", "daemon-bob", msgs[1].ID, "--json")
	var gj struct {
		Subject     string `json:"subject"`
		Text        string `json:"text"`
		Attachments []struct {
			Name string `json:"name"`
			Size int    `json:"size"`
		} `json:"attachments"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &gj) != nil || gj.Subject != subject || len(gj.Attachments) != 1 || gj.Attachments[0].Name != bigName || gj.Attachments[0].Size != len(big) {
		t.Errorf("get --json: %d %.300q", code, out)
	}

	// Folders, move to Archive, delete there (IMAP).
	code, out, _ = cli("", "--json", "mail", "folders", "daemon-bob")
	var folders []struct {
		Name  string `json:"name"`
		Role  string `json:"role"`
		Total int    `json:"total"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &folders) != nil || len(folders) < 6 || folders[0].Name != "INBOX" || folders[0].Total != 2 {
		t.Fatalf("folders: %d %q", code, out)
	}
	code, out, errs = cli("", "--json", "mail", "move", "daemon-bob", msgs[1].ID, "Archive")
	var mv struct {
		NewID string `json:"new_id"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &mv) != nil || mv.NewID == "" {
		t.Fatalf("move: %d %q %q", code, out, errs)
	}
	if inbox := list(); len(inbox) != 1 || inbox[0].ID != msgs[0].ID {
		t.Errorf("inbox after move: %+v", inbox)
	}
	archive := list("--folder", "Archive")
	if len(archive) != 1 || archive[0].ID != mv.NewID || archive[0].Subject != subject {
		t.Fatalf("archive after move: %+v (new id %s)", archive, mv.NewID)
	}
	if code, _, errs := cli("", "mail", "get", "daemon-bob", msgs[1].ID); code != exitFailure || !strings.Contains(errs, "no such message") {
		t.Errorf("get of the moved-away id: %d %q", code, errs)
	}
	if code, out, _ := cli("", "mail", "delete", "daemon-bob", mv.NewID); code != exitOK || !strings.Contains(out, "Deleted") {
		t.Fatalf("delete: %d %q", code, out)
	}
	if archive := list("--folder", "Archive"); len(archive) != 0 {
		t.Errorf("archive after delete: %+v", archive)
	}

	// Delete over POP3: committed at QUIT, gone for IMAP too.
	popMsgs = list("--via", "pop")
	if len(popMsgs) != 1 {
		t.Fatalf("pop after IMAP changes: %+v", popMsgs)
	}
	if code, _, errs := cli("", "mail", "delete", "daemon-bob", popMsgs[0].ID, "--via", "pop"); code != exitOK {
		t.Fatalf("delete --via pop: %d %q", code, errs)
	}
	if inbox := list(); len(inbox) != 0 {
		t.Errorf("inbox after POP3 delete: %+v", inbox)
	}
	if code, _, _ := cli("", "mail", "delete", "daemon-bob", popMsgs[0].ID, "--via", "pop"); code != exitFailure {
		t.Errorf("deleting a gone message: exit %d", code)
	}
}

// TestMailBadInput: each mistake is one clear sentence with the right exit code, and sends nothing.
func TestMailBadInput(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	cli := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		return runCLIStdin(t, stdin, append([]string{"--config", cfg}, args...)...)
	}
	inboxSize := func() int {
		t.Helper()
		_, out, errs := cli("", "--json", "mail", "list", "daemon-bob")
		var l []listed
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("list: %q %q", out, errs)
		}
		return len(l)
	}
	oneSentence := func(what, errs string) {
		t.Helper()
		if strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "mailoauth: ") {
			t.Errorf("%s: not one line on stderr: %q", what, errs)
		}
	}

	code, out, errs := cli("", "send", "daemon", "--to", world.Bob, "--subject", "x", "--body", "x", "--attach", "/no/such/report.pdf")
	if code != exitUsage || out != "" || !strings.Contains(errs, "/no/such/report.pdf") || !strings.Contains(errs, "nothing was sent") {
		t.Errorf("missing attachment: %d %q %q", code, out, errs)
	}
	oneSentence("missing attachment", errs)

	code, _, errs = cli("", "send", "daemon", "--to", world.Bob, "--to", "nobody@contoso.test", "--subject", "x", "--body", "x")
	if code != exitFailure || !strings.Contains(errs, "nobody@contoso.test") || !strings.Contains(errs, "550 5.1.10 RESOLVER.ADR.RecipientNotFound") {
		t.Errorf("refused recipient: %d %q", code, errs)
	}
	oneSentence("refused recipient", errs)

	for _, bad := range []string{"", "this is not a message\n", "\nonly a body\n", "From: alice@contoso.test\nTo: <<<broken\n\nx\n"} {
		code, out, errs := cli(bad, "sendmail", "-t", "--account", "daemon")
		if code != exitUsage || out != "" || !strings.Contains(errs, "not an RFC 5322 message") || !strings.Contains(errs, "nothing was sent") {
			t.Errorf("sendmail with %q: %d %q %q", bad, code, out, errs)
		}
		oneSentence("malformed sendmail input", errs)
	}
	if code, _, errs := cli("Subject: x\n\nx\n", "sendmail", "-t", "-f", world.Alice); code != exitUsage || !strings.Contains(errs, "--account") {
		t.Errorf("sendmail with an ambiguous -f: %d %q", code, errs)
	}
	if code, _, errs := cli("Subject: x\n\nx\n", "sendmail", "--account", "daemon"); code != exitUsage || !strings.Contains(errs, "no recipients") {
		t.Errorf("sendmail without recipients: %d %q", code, errs)
	}
	if n := inboxSize(); n != 0 {
		t.Fatalf("bad input delivered %d messages", n)
	}

	// -f picks the one account sending as bob; the RCPT argument is the recipient.
	if code, _, errs := cli("Subject: note to self\n\nx\n", "sendmail", "-f", world.Bob, world.Bob); code != exitOK {
		t.Fatalf("sendmail -f bob: %d %q", code, errs)
	}

	// An attachment named ../../evil.txt is saved inside the directory.
	evil := "From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: evil\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"../../evil.txt\"\r\n\r\npwned\r\n--b--\r\n"
	if code, _, errs := cli(evil, "sendmail", "-t", "--account", "daemon"); code != exitOK {
		t.Fatalf("sendmail evil: %d %q", code, errs)
	}
	_, out, _ = cli("", "--json", "mail", "list", "daemon-bob")
	var l []listed
	json.Unmarshal([]byte(out), &l)
	if len(l) != 2 || l[0].Subject != "evil" {
		t.Fatalf("list: %+v", l)
	}
	parent := t.TempDir()
	save := filepath.Join(parent, "a", "b")
	os.MkdirAll(save, 0o700)
	if code, out, errs := cli("", "mail", "get", "daemon-bob", l[0].ID, "--save-attachments", save); code != exitOK || !strings.Contains(out, filepath.Join(save, "evil.txt")) {
		t.Fatalf("get evil: %d %q %q", code, out, errs)
	}
	if b, err := os.ReadFile(filepath.Join(save, "evil.txt")); err != nil || string(b) != "pwned" {
		t.Errorf("evil.txt in DIR: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(parent, "evil.txt")); err == nil {
		t.Error("../../evil.txt escaped the directory")
	}

	// Usage errors: exit 2 before connecting.
	for _, args := range [][]string{
		{"send", "daemon", "--to", world.Bob, "--subject", "x", "--body", "x", "--via", "graph", "--attach", "/no/such/file"},
		{"mail", "list", "daemon-bob", "--via", "smtp"},
		{"mail", "list", "daemon-bob", "--via", "pop", "--unseen"},
		{"mail", "list", "daemon-bob", "--via", "pop", "--folder", "Archive"},
		{"mail", "move", "daemon-bob", "1", "Archive", "--via", "pop"},
		{"mail", "get", "daemon-bob", "1", "--save-attachments", "/no/such/dir"},
		{"send", "daemon", "--subject", "x", "--body", "x"},
		{"send", "daemon", "--to", world.Bob, "--subject", "x"},
	} {
		if code, _, errs := cli("", args...); code != exitUsage {
			t.Errorf("%v: exit %d, %q", args, code, errs)
		} else {
			oneSentence(strings.Join(args, " "), errs)
		}
	}
	if code, _, errs := cli("x", "sendmail", "--account", "daemon", "--via", "graph", world.Bob); code != exitUsage || !strings.Contains(errs, "not an RFC 5322 message") {
		t.Errorf("sendmail --via graph with a malformed message: %d %q", code, errs)
	}
}

// TestGraphTransport: send over Graph and over SMTP, read both over Graph and IMAP.
func TestGraphTransport(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLIStdin(t, "", append([]string{"--config", cfg}, args...)...)
	}
	dir := t.TempDir()
	big := make([]byte, 300<<10)
	rand.Read(big)
	const name = "Übersicht 日本.bin"
	p := filepath.Join(dir, name)
	os.WriteFile(p, big, 0o600)
	if code, out, errs := cli("send", "daemon", "--via", "graph", "--to", world.Bob, "--subject", "über Graph", "--body", "hi", "--attach", p); code != exitOK || !strings.Contains(out, "over GRAPH") {
		t.Fatalf("send --via graph: %d %q %q", code, out, errs)
	}
	if code, _, errs := cli("send", "daemon", "--to", world.Bob, "--subject", "über SMTP", "--body", "hi", "--attach", p); code != exitOK {
		t.Fatalf("send: %d %q", code, errs)
	}
	for _, via := range []string{"graph", "imap", "pop"} {
		code, out, errs := cli("--json", "mail", "list", "daemon-bob", "--via", via)
		var l []listed
		if code != exitOK || json.Unmarshal([]byte(out), &l) != nil || len(l) != 2 {
			t.Fatalf("list --via %s: %d %q %q", via, code, out, errs)
		}
		for _, m := range l {
			if !strings.HasPrefix(m.Subject, "über ") || !m.HasAttachments || m.ID == "" {
				t.Errorf("--via %s: %+v", via, m)
			}
			save := t.TempDir()
			if code, out, errs := cli("mail", "get", "daemon-bob", m.ID, "--via", via, "--save-attachments", save); code != exitOK {
				t.Fatalf("get --via %s: %d %q %q", via, code, out, errs)
			}
			if got, _ := os.ReadFile(filepath.Join(save, name)); !bytes.Equal(got, big) {
				t.Errorf("--via %s, %q: the saved attachment differs", via, m.Subject)
			}
		}
	}
	code, out, _ := cli("--json", "mail", "list", "daemon-bob", "--via", "graph")
	var l []listed
	json.Unmarshal([]byte(out), &l)
	code, out, errs := cli("--json", "mail", "move", "daemon-bob", l[0].ID, "Archive", "--via", "graph")
	var mv struct {
		NewID string `json:"new_id"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &mv) != nil || mv.NewID == "" {
		t.Fatalf("move --via graph: %d %q %q", code, out, errs)
	}
	if code, _, errs := cli("mail", "delete", "daemon-bob", mv.NewID, "--via", "graph"); code != exitOK {
		t.Fatalf("delete --via graph: %d %q", code, errs)
	}
	if code, out, _ := cli("--json", "mail", "list", "daemon-bob", "--via", "graph", "--folder", "Archive"); code != exitOK || strings.TrimSpace(out) != "[]" {
		t.Errorf("archive after delete over Graph: %d %q", code, out)
	}
	if code, out, _ := cli("--json", "mail", "folders", "daemon-bob", "--via", "graph"); code != exitOK || !strings.Contains(out, `"role":"archive"`) {
		t.Errorf("folders --via graph: %d %q", code, out)
	}
}

// TestSendmailOverGraph: sendmail --via graph submits the message in MIME format; bob reads it over
// IMAP with the same body and attachment, and mail list gives the same size over Graph and IMAP.
func TestSendmailOverGraph(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	cli := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		return runCLIStdin(t, stdin, append([]string{"--config", cfg}, args...)...)
	}
	att := make([]byte, 30<<10)
	rand.Read(att)
	enc := base64.StdEncoding.EncodeToString(att)
	var lines []string
	for len(enc) > 76 {
		lines, enc = append(lines, enc[:76]), enc[76:]
	}
	lines = append(lines, enc)
	body := "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nnightly report\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"report.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		strings.Join(lines, "\r\n") + "\r\n--b--\r\n"
	msg := "From: alice@contoso.test\r\nTo: bob@contoso.test\r\nBcc: support@contoso.test\r\nSubject: over Graph\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body
	code, out, errs := cli(msg, "--json", "sendmail", "-t", "--account", "daemon", "--via", "graph")
	var sent sentJSON
	if code != exitOK || json.Unmarshal([]byte(out), &sent) != nil || sent.Via != "graph" || len(sent.Recipients) != 2 {
		t.Fatalf("sendmail -t --via graph: %d %q %q", code, out, errs)
	}

	sizes := map[string]int64{}
	var imapID string
	for _, via := range []string{"graph", "imap"} {
		code, out, errs := cli("", "--json", "mail", "list", "daemon-bob", "--via", via)
		var l []listed
		if code != exitOK || json.Unmarshal([]byte(out), &l) != nil || len(l) != 1 || l[0].Subject != "over Graph" || l[0].Size <= 0 {
			t.Fatalf("list --via %s: %d %q %q", via, code, out, errs)
		}
		sizes[via] = l[0].Size
		if via == "imap" {
			imapID = l[0].ID
		}
	}
	if sizes["graph"] != sizes["imap"] {
		t.Errorf("size over Graph %d, over IMAP (RFC822.SIZE) %d", sizes["graph"], sizes["imap"])
	}
	save := t.TempDir()
	if code, out, errs := cli("", "--json", "mail", "get", "daemon-bob", imapID, "--via", "imap", "--save-attachments", save); code != exitOK ||
		!strings.Contains(out, "nightly report") || strings.Contains(out, "support@contoso.test") {
		t.Fatalf("get --via imap: %d %q %q", code, out, errs)
	}
	if got, _ := os.ReadFile(filepath.Join(save, "report.bin")); !bytes.Equal(got, att) {
		t.Error("the attachment read over IMAP differs from the one sent")
	}

	// RCPT arguments that the headers do not name travel as Bcc; a To that is not a recipient is
	// refused (Graph would deliver to it); no recipient at all is refused before anything is sent.
	if code, _, errs := cli("To: bob@contoso.test\r\nSubject: to bob\r\n\r\nx\r\n", "sendmail", "--account", "daemon", "--via", "graph", world.Bob, "support@contoso.test"); code != exitOK {
		t.Fatalf("sendmail --via graph RCPT: %d %q", code, errs)
	}
	if code, _, errs := cli("To: support@contoso.test\r\nSubject: not to bob\r\n\r\nx\r\n", "sendmail", "--account", "daemon", "--via", "graph", world.Bob); code != exitUsage || !strings.Contains(errs, "support@contoso.test") || !strings.Contains(errs, "nothing was sent") || !strings.Contains(errs, "use -t") {
		t.Errorf("sendmail --via graph, To not a recipient: %d %q", code, errs)
	}
	if code, _, errs := cli("Subject: nobody\r\n\r\nx\r\n", "sendmail", "-t", "--account", "daemon", "--via", "graph"); code != exitUsage || !strings.Contains(errs, "no To, Cc or Bcc") {
		t.Errorf("sendmail --via graph without recipients: %d %q", code, errs)
	}
	code, out, _ = cli("", "--json", "mail", "list", "daemon-bob", "--via", "imap")
	var l []listed
	if json.Unmarshal([]byte(out), &l) != nil || len(l) != 2 || l[0].Subject != "to bob" {
		t.Errorf("bob's inbox: %q", out)
	}
}
