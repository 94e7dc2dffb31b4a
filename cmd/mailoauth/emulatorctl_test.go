package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestEmulatorCtl drives a running emulator with `mailoauth emulator ctl`, end to end: each command
// changes what the servers do, refusals exit 1 with the emulator's words, local problems exit 2.
func TestEmulatorCtl(t *testing.T) {
	l := emulatortest.Start(t, emulator.Options{})
	ctx := context.Background()
	ctl := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, ctx, append([]string{"emulator", "ctl", "--data", l.Dir}, args...)...)
	}

	if code, out, errs := ctl("users", "add", "carol@contoso.test", "password=carol-pw", "imap_disabled=true"); code != exitOK || !strings.Contains(out, `"upn": "carol@contoso.test"`) {
		t.Fatalf("users add: %d %q %q", code, out, errs)
	}
	if u := l.E.World().Tenant("contoso").User("carol@contoso.test"); u == nil || u.Password != "carol-pw" || !u.Mailbox.IMAPDisabled {
		t.Fatalf("carol after users add: %+v", u)
	}
	if code, _, errs := ctl("users", "add", "carol@contoso.test"); code != exitFailure || !strings.Contains(errs, "taken") {
		t.Fatalf("users add twice: %d %q", code, errs)
	}
	if code, _, errs := ctl("users", "set", "carol@contoso.test", "smtp_auth=maybe"); code != exitFailure || !strings.Contains(errs, "smtp_auth") {
		t.Fatalf("users set with a bad value: %d %q", code, errs)
	}
	if code, _, errs := ctl("users", "rm", "carol@contoso.test"); code != exitOK {
		t.Fatalf("users rm: %d %q", code, errs)
	}
	if l.E.World().Tenant("contoso").User("carol@contoso.test") != nil {
		t.Fatal("users rm left the user")
	}

	code, out, errs := ctl("apps", "add", "tool", "application=IMAP.AccessAsApp,SMTP.SendAsApp")
	var app struct {
		Secret      string   `json:"secret"`
		Application []string `json:"application"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &app) != nil || app.Secret == "" || len(app.Application) != 2 {
		t.Fatalf("apps add: %d %q %q", code, out, errs)
	}
	certFile := filepath.Join(l.Dir, "daemon-cert.pem") // certificate and private key
	if code, out, errs := ctl("apps", "cert-add", "tool", certFile); code != exitOK || !strings.Contains(out, `"thumbprint"`) {
		t.Fatalf("apps cert-add: %d %q %q", code, out, errs)
	}
	if a := l.E.World().App("tool"); len(a.Certificates) != 1 || !a.Certificates[0].Equal(l.E.Credentials["daemon"].Cert) {
		t.Fatalf("tool's certificates after cert-add: %d", len(a.Certificates))
	}
	pemData, _ := os.ReadFile(certFile)
	if sent, err := publicPEM(pemData); err != nil || strings.Contains(string(sent), "PRIVATE KEY") || !strings.Contains(string(pemData), "PRIVATE KEY") {
		t.Fatalf("cert-add would send %q (%v)", sent, err)
	}
	if code, _, errs := ctl("apps", "cert-rm", "tool", "1"); code != exitOK || len(l.E.World().App("tool").Certificates) != 0 {
		t.Fatalf("apps cert-rm: %d %q", code, errs)
	}
	if code, _, errs := ctl("apps", "secret-rm", "tool", "1"); code != exitOK {
		t.Fatalf("apps secret-rm: %d %q", code, errs)
	}
	if a := l.E.World().App("tool"); a == nil || len(a.Secrets) != 0 {
		t.Fatalf("tool after secret-rm: %+v", a)
	}

	if code, out, errs := ctl("fault", "set", "endpoint=smtp", "reply=421 4.3.2 Service not available", "times=1"); code != exitOK || !strings.Contains(out, `"id"`) {
		t.Fatalf("fault set: %d %q %q", code, out, errs)
	}
	c, err := net.DialTimeout("tcp", l.E.MailAddrs["smtp"], 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	br.ReadString('\n')
	io.WriteString(c, "NOOP\r\n")
	if line, _ := br.ReadString('\n'); strings.TrimSpace(line) != "421 4.3.2 Service not available" {
		t.Fatalf("SMTP after fault set: %q", line)
	}
	if code, _, errs := ctl("fault", "clear"); code != exitOK || len(l.E.World().Faults) != 0 {
		t.Fatalf("fault clear: %d %q", code, errs)
	}

	msg := filepath.Join(t.TempDir(), "m.eml")
	os.WriteFile(msg, []byte("From: x@example.org\r\nSubject: via ctl\r\n\r\nhi\r\n"), 0o600)
	if code, _, errs := ctl("deliver", world.Bob, msg); code != exitOK {
		t.Fatalf("deliver: %d %q", code, errs)
	}
	if msgs, _ := l.E.Store.List(world.Bob, "INBOX"); len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "via ctl") {
		t.Fatalf("bob's INBOX after deliver: %d messages", len(msgs))
	}
	if code, out, errs := ctl("events", "kind=message.delivered"); code != exitOK || !strings.Contains(out, `"mailbox":"bob@contoso.test"`) {
		t.Fatalf("events: %d %q %q", code, out, errs)
	}
	if code, _, errs := ctl("deliver", world.Bob, filepath.Join(t.TempDir(), "missing.eml")); code != exitUsage {
		t.Fatalf("deliver of a missing file: %d %q", code, errs)
	}
	if code, _, errs := ctl("reset"); code != exitOK || l.E.World().App("tool") != nil {
		t.Fatalf("reset: %d %q", code, errs)
	}
	if code, _, errs := ctl("users", "add", "x=y"); code != exitUsage {
		t.Fatalf("users add of a non-address: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, ctx, "emulator", "ctl", "--data", t.TempDir(), "world"); code != exitUsage || !strings.Contains(errs, "control-url") {
		t.Fatalf("ctl without an emulator: %d %q", code, errs)
	}
}

// TestEmulatorCtlFollow: events --follow prints events as they happen until interrupted.
func TestEmulatorCtlFollow(t *testing.T) {
	l := emulatortest.Start(t, emulator.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"emulator", "ctl", "--data", l.Dir, "events", "--follow", "kind=message.delivered"}, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	if code, _, errs := runCLIStdin(t, "Subject: followed\r\n\r\nhi\r\n", "emulator", "ctl", "--data", l.Dir, "deliver", world.Alice, "-"); code != exitOK {
		t.Fatalf("deliver from standard input: %d %q", code, errs)
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(pr).ReadString('\n')
		lines <- line
	}()
	select {
	case line := <-lines:
		if !strings.Contains(line, `"kind":"message.delivered"`) {
			t.Fatalf("followed %q", line)
		}
	case <-time.After(time.Minute):
		t.Fatal("events --follow printed nothing for a minute after a delivery")
	}
	cancel()
	go io.Copy(io.Discard, pr)
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("events --follow exited %d after an interrupt", code)
		}
	case <-time.After(time.Minute):
		t.Fatal("events --follow did not stop when interrupted")
	}
}
