package exchange_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// py runs testdata/pyclient.py (Python's imaplib, poplib, smtplib: an implementation independent of
// this module and of go-imap/go-smtp) against the emulator. Secrets go through the environment.
func py(t *testing.T, v *env, mode string, vars map[string]string) map[string]any {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, v.E.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	host, imapPort, _ := net.SplitHostPort(v.addr(exchange.AddrIMAP))
	_, popPort, _ := net.SplitHostPort(v.addr(exchange.AddrPOP))
	_, smtpPort, _ := net.SplitHostPort(v.addr(exchange.AddrSMTP))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "pyclient.py"), mode)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "MAIL_HOST=" + host, "IMAP_PORT=" + imapPort, "POP_PORT=" + popPort,
		"SMTP_PORT=" + smtpPort, "MAIL_CAFILE=" + ca}
	for k, val := range vars {
		cmd.Env = append(cmd.Env, k+"="+val)
	}
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("pyclient %s: %v\n%s\n%s", mode, err, out, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("pyclient %s printed %q", mode, out)
	}
	return res
}

func TestPythonIMAP(t *testing.T) {
	v := shared(t)
	tok := v.userToken(t, world.Alice, exoAll)
	r := py(t, v, "imap", map[string]string{"MAIL_USER": world.Alice, "MAIL_TOKEN": tok})
	if r["ok"] != true || r["authenticate"] != "AUTHENTICATE completed." || !strings.HasPrefix(r["greeting"].(string), "* OK The Microsoft Exchange IMAP4 service is ready. [") {
		t.Fatalf("imaplib XOAUTH2: %v", r)
	}
	if sel := r["select"].([]any); sel[0] != "OK" {
		t.Errorf("SELECT INBOX: %v", sel)
	}
	caps := strings.Join(toStrings(r["capabilities"]), " ")
	if !strings.Contains(caps, "AUTH=XOAUTH2") || strings.Contains(caps, "OAUTHBEARER") || strings.Contains(caps, "MOVE") {
		t.Errorf("pre-auth capabilities seen by imaplib: %s", caps)
	}

	r = py(t, v, "imap", map[string]string{"MAIL_USER": world.Alice, "MAIL_TOKEN": forge(t, tok, nil)})
	if r["ok"] != false || r["error"] != "AUTHENTICATE failed." {
		t.Errorf("imaplib with a forged token: %v", r)
	}
	r = py(t, v, "imap_login", map[string]string{"MAIL_USER": world.Alice, "MAIL_PASSWORD": "alice-password"})
	if r["ok"] != false || r["error"] != "LOGIN failed." {
		t.Errorf("imaplib LOGIN: %v", r)
	}
}

func TestPythonPOP3(t *testing.T) {
	v := shared(t)
	tok := v.userToken(t, world.Bob, exoAll)
	r := py(t, v, "pop", map[string]string{"MAIL_USER": world.Bob, "MAIL_TOKEN": tok})
	if r["ok"] != true || r["auth"] != "+ " || r["auth2"] != "+OK User successfully authenticated." {
		t.Fatalf("poplib XOAUTH2: %v", r)
	}
	if _, ok := r["stat"].([]any); !ok {
		t.Errorf("STAT: %v", r)
	}
	capa := r["capa"].(map[string]any)
	if sasl := toStrings(capa["SASL"]); strings.Join(sasl, " ") != "PLAIN XOAUTH2" {
		t.Errorf("CAPA SASL %v", capa)
	}
	r = py(t, v, "pop", map[string]string{"MAIL_USER": world.Bob, "MAIL_TOKEN": v.appToken(t, "nosp", exoApp)})
	if r["ok"] != false || r["error"] != "-ERR Authentication failure: unknown user name or bad password." {
		t.Errorf("poplib with an app without service principal: %v", r)
	}
}

func TestPythonSMTPThenReadBack(t *testing.T) {
	v := dedicated(t, nil)
	atok := v.userToken(t, world.Alice, exoAll)
	btok := v.userToken(t, world.Bob, exoAll)
	msg := "From: Alice <alice@contoso.test>\r\nTo: bob@contoso.test\r\nSubject: from smtplib\r\nMessage-ID: <py-1@contoso.test>\r\n\r\nHello Bob,\r\n.a line that starts with a dot\r\n\r\n-- \r\nAlice\r\n"
	r := py(t, v, "smtp", map[string]string{"MAIL_USER": world.Alice, "MAIL_TOKEN": atok, "MAIL_TO": world.Bob,
		"MAIL_MESSAGE": base64.StdEncoding.EncodeToString([]byte(msg))})
	if r["ok"] != true {
		t.Fatalf("smtplib: %v", r)
	}
	if a := r["auth"].([]any); a[0] != float64(235) || a[1] != "2.7.0 Authentication successful" {
		t.Errorf("AUTH: %v", a)
	}
	if strings.TrimSpace(r["auth_after_tls"].(string)) != "LOGIN XOAUTH2" || strings.Contains(strings.Join(toStrings(r["features_before_tls"]), " "), "auth") {
		t.Errorf("EHLO: %v / %v", r["features_before_tls"], r["auth_after_tls"])
	}
	// Read back with Python's imaplib and poplib, and with the Go raw clients: byte-identical.
	for _, mode := range []string{"imap_fetch_last", "pop_retr_last"} {
		rb := py(t, v, mode, map[string]string{"MAIL_USER": world.Bob, "MAIL_TOKEN": btok})
		got, _ := base64.StdEncoding.DecodeString(rb["message"].(string))
		if string(got) != msg {
			t.Errorf("%s read back %q\nsent %q", mode, got, msg)
		}
	}
	pc := popLogin(t, v, world.Bob, btok)
	pc.send("RETR 1")
	pc.expect("+OK")
	if got := strings.Join(pc.multiline(), "\r\n") + "\r\n"; got != msg {
		t.Errorf("RETR %q", got)
	}

	r = py(t, v, "smtp", map[string]string{"MAIL_USER": world.Alice, "MAIL_TOKEN": forge(t, atok, nil)})
	if r["ok"] != false || r["code"] != float64(535) || !strings.HasPrefix(r["error"].(string), "5.7.3 Authentication unsuccessful [") {
		t.Errorf("smtplib with a forged token: %v", r)
	}
	r = py(t, v, "smtp_login", map[string]string{"MAIL_USER": world.Alice, "MAIL_PASSWORD": "alice-password"})
	if r["ok"] != false || r["code"] != float64(535) || !strings.HasPrefix(r["error"].(string), "5.7.139 Authentication unsuccessful, basic authentication is disabled. [") {
		t.Errorf("smtplib login: %v", r)
	}
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			out = append(out, x.(string))
		}
	}
	return out
}
