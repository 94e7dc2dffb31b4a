package smtpgw_test

// Real TCP connections to the gateway, handed over through a gateway.Listener as the proxy does,
// and real HTTPS from the gateway to the in-process emulator's Graph.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/gateway/smtpgw"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/mail"
	"github.com/mailoauth/mailoauth/mailoauthtest"
)

const (
	alice = "alice@contoso.test"
	bob   = "bob@contoso.test"
	carol = "carol@contoso.test"
	dave  = "dave@contoso.test"

	password = "proxy-password"
)

// testWorld: app "sender" may do everything with alice's mailbox; "nosend" has Mail.ReadWrite but
// not Mail.Send.
var testWorld = &mailoauthtest.World{
	Users: []mailoauthtest.User{{Address: alice}, {Address: bob}, {Address: carol}, {Address: dave}},
	Apps: []mailoauthtest.App{
		{Name: "sender", Flow: config.FlowClientCredentials, Mailbox: alice},
		{Name: "nosend", Flow: config.FlowClientCredentials, Mailbox: alice, Permissions: []string{"Mail.ReadWrite"}},
	},
}

// syncBuffer is a log both the gateway and the test use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is an emulator, a gateway serving a gateway.Listener, and a TCP listener pushing to it.
type env struct {
	srv    *mailoauthtest.Server
	addr   string
	log    *syncBuffer
	logins atomic.Int32
	closed atomic.Int32
	closes chan struct{} // one per Closed call
	ln     *gateway.Listener
	mb     *gateway.Mailbox
	gw     *smtpgw.Server
}

var (
	sharedOnce sync.Once
	sharedSrv  *mailoauthtest.Server
	sharedErr  error
)

// emulator is one emulator for the package's tests (each test uses its own subjects).
func emulator(t *testing.T) *mailoauthtest.Server {
	sharedOnce.Do(func() {
		sharedSrv, sharedErr = mailoauthtest.Start(context.Background(), mailoauthtest.Options{World: testWorld})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedSrv
}

// start serves a gateway for account's mailbox; the Handoff takes any user with password.
func start(t *testing.T, srv *mailoauthtest.Server, account string, o smtpgw.Options) *env {
	t.Helper()
	acc, err := auth.NewAccount(srv.Account(account), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := &env{srv: srv, log: &syncBuffer{}, closes: make(chan struct{}, 100)}
	v.mb = &gateway.Mailbox{Address: acc.Mailbox(), Account: account, Graph: graph.ForAccount(acc)}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(v.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v.addr = tl.Addr().String()
	v.ln = gateway.NewListener(tl.Addr())
	gw := smtpgw.New(o)
	v.gw = gw
	served := make(chan error, 1)
	go func() { served <- gw.Serve(v.ln) }()
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			if err := v.ln.Push(c, v.handoff()); err != nil {
				c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		tl.Close()
		v.ln.Close()
		gw.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return v
}

func (v *env) handoff() *gateway.Handoff {
	return &gateway.Handoff{
		Login: func(ctx context.Context, user, pw string) (*gateway.Mailbox, error) {
			v.logins.Add(1)
			switch {
			case user == "busy":
				return nil, &gateway.LoginError{Temporary: true, Msg: "The account's tokens are being refreshed; try again."}
			case pw != password:
				return nil, &gateway.LoginError{Msg: "Wrong user name or password."}
			}
			return v.mb, nil
		},
		Closed: func() { v.closed.Add(1); v.closes <- struct{}{} },
	}
}

// dial connects, says EHLO and logs in (unless user is "").
func (v *env) dial(t *testing.T, user string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(v.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if user != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
			t.Fatalf("AUTH PLAIN: %v", err)
		}
	}
	return c
}

func build(t *testing.T, d mail.Draft) []byte {
	t.Helper()
	raw, err := mail.Build(d)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// inFolder returns the messages of mailbox's folder with subject.
func inFolder(t *testing.T, srv *mailoauthtest.Server, mailbox, folder, subject string) []mailoauthtest.Message {
	t.Helper()
	msgs, err := srv.Messages(mailbox)
	if err != nil {
		t.Fatal(err)
	}
	var out []mailoauthtest.Message
	for _, m := range msgs {
		if m.Folder == folder && m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

func uniqueSubject(t *testing.T) string { return fmt.Sprintf("%s %d", t.Name(), time.Now().UnixNano()) }

func wantCode(t *testing.T, err error, code int, enhanced smtp.EnhancedCode) *smtp.SMTPError {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T), want SMTP %d %v", err, err, code, enhanced)
	}
	if se.Code != code || se.EnhancedCode != enhanced {
		t.Fatalf("reply %d %v %q, want %d %v", se.Code, se.EnhancedCode, se.Message, code, enhanced)
	}
	return se
}

// TestSendWithBcc: a small message goes through sendMail in MIME format, as it was written (a
// header of its own survives); the envelope recipient the headers do not name gets it as Bcc
// without appearing in anyone's copy; a Bcc header naming someone who is not an envelope recipient
// reaches nobody; the sender keeps a copy in Sent Items.
func TestSendWithBcc(t *testing.T) {
	v := start(t, emulator(t), "sender", smtpgw.Options{})
	subject := uniqueSubject(t)
	raw := build(t, mail.Draft{From: []string{alice}, To: []string{bob}, Subject: subject, Text: "Hello Bob"})
	raw = append([]byte("X-Gateway-Test: kept\r\nBcc: "+dave+"\r\n"), raw...)
	c := v.dial(t, "alice")
	if err := c.SendMail(alice, []string{bob, carol}, bytes.NewReader(raw)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	for _, who := range []string{bob, carol} {
		got := inFolder(t, v.srv, who, mailoauthtest.Inbox, subject)
		if len(got) != 1 {
			t.Fatalf("%s has %d copies, want 1", who, len(got))
		}
		data := string(got[0].Data)
		if !strings.Contains(data, "X-Gateway-Test: kept") {
			t.Errorf("%s's copy lost the message's own header:\n%s", who, data)
		}
		if strings.Contains(strings.ToLower(data), "bcc:") || strings.Contains(data, carol) || strings.Contains(data, dave) {
			t.Errorf("%s's copy shows a Bcc recipient:\n%s", who, data)
		}
	}
	if got := inFolder(t, v.srv, dave, mailoauthtest.Inbox, subject); len(got) != 0 {
		t.Errorf("dave, named only in the data's Bcc header, got the message")
	}
	if got := inFolder(t, v.srv, alice, "Sent Items", subject); len(got) != 1 {
		t.Errorf("alice's Sent Items has %d copies, want 1", len(got))
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, v, 1)
}

// waitClosed waits until the proxy was told of n ended connections (Closed runs as the
// connection closes, just after the client sees QUIT's answer).
func waitClosed(t *testing.T, v *env, n int32) {
	t.Helper()
	timeout := time.After(time.Minute)
	for v.closed.Load() < n {
		select {
		case <-v.closes:
		case <-timeout:
			t.Fatalf("Closed called %d times, want %d", v.closed.Load(), n)
		}
	}
	if got := v.closed.Load(); got != n {
		t.Fatalf("Closed called %d times, want %d", got, n)
	}
}

// TestSendLarge: a 10 MB message with an 8 MB attachment is too large for sendMail (Graph's 4 MB
// request): it goes through a draft whose attachment is uploaded in chunks, and arrives whole.
func TestSendLarge(t *testing.T) {
	spool := t.TempDir()
	v := start(t, emulator(t), "sender", smtpgw.Options{SpoolDir: spool})
	subject := uniqueSubject(t)
	blob := make([]byte, 8<<20)
	rand.Read(blob)
	raw := build(t, mail.Draft{From: []string{alice}, To: []string{bob}, Subject: subject, Text: "The file.",
		Attachments: []mail.Attachment{{Name: "data.bin", ContentType: "application/octet-stream", Data: blob}}})
	if len(raw) < 10<<20 {
		t.Fatalf("the message is %d bytes, want over 10 MB", len(raw))
	}
	c := v.dial(t, "alice")
	if err := c.SendMail(alice, []string{bob}, bytes.NewReader(raw)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	got := inFolder(t, v.srv, bob, mailoauthtest.Inbox, subject)
	if len(got) != 1 {
		t.Fatalf("bob has %d copies, want 1", len(got))
	}
	m, err := mail.Parse(got[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].Name != "data.bin" || !bytes.Equal(m.Attachments[0].Data, blob) {
		t.Fatalf("bob's copy has %d attachments, not data.bin as sent", len(m.Attachments))
	}
	if !strings.Contains(m.Text, "The file.") {
		t.Errorf("bob's copy lost the text: %q", m.Text)
	}
	if got := inFolder(t, v.srv, alice, "Sent Items", subject); len(got) != 1 {
		t.Errorf("alice's Sent Items has %d copies, want 1", len(got))
	}
	assertEmptyDir(t, spool)
}

// TestDontSaveToSentItems: with the option, a message reaches its recipient and leaves no copy; a
// Bcc header the program left in it (naming no envelope recipient) reaches nobody.
func TestDontSaveToSentItems(t *testing.T) {
	v := start(t, emulator(t), "sender", smtpgw.Options{Gateway: gateway.Options{DontSaveToSentItems: true}})
	subject := uniqueSubject(t)
	raw := build(t, mail.Draft{From: []string{alice}, To: []string{bob}, Subject: subject, Text: "no copy"})
	raw = append([]byte("Bcc: "+dave+"\r\n"), raw...)
	c := v.dial(t, "alice")
	if err := c.SendMail(alice, []string{bob}, bytes.NewReader(raw)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if got := inFolder(t, v.srv, bob, mailoauthtest.Inbox, subject); len(got) != 1 {
		t.Fatalf("bob has %d copies, want 1", len(got))
	}
	if got := inFolder(t, v.srv, alice, "Sent Items", subject); len(got) != 0 {
		t.Errorf("alice's Sent Items has %d copies, want none", len(got))
	}
	if got := inFolder(t, v.srv, dave, mailoauthtest.Inbox, subject); len(got) != 0 {
		t.Errorf("dave, named only in the data's Bcc header, got the message")
	}
}

// TestHeaderRecipientNotInEnvelope: Graph would send to every To address, so a message whose To
// names someone the program did not give as a recipient is refused, and reaches nobody.
func TestHeaderRecipientNotInEnvelope(t *testing.T) {
	v := start(t, emulator(t), "sender", smtpgw.Options{})
	subject := uniqueSubject(t)
	raw := build(t, mail.Draft{From: []string{alice}, To: []string{bob, carol}, Subject: subject, Text: "x"})
	c := v.dial(t, "alice")
	se := wantCode(t, c.SendMail(alice, []string{carol}, bytes.NewReader(raw)), 550, smtp.EnhancedCode{5, 6, 0})
	if !strings.Contains(se.Message, bob) {
		t.Errorf("the reply does not say which address: %q", se.Message)
	}
	for _, who := range []string{bob, carol} {
		if got := inFolder(t, v.srv, who, mailoauthtest.Inbox, subject); len(got) != 0 {
			t.Errorf("%s got the refused message", who)
		}
	}
}

// TestThrottled: Graph answers 429 twice; the gateway waits as Retry-After says and the message
// arrives once. When Graph asks for a longer wait than the client will make, the program is told
// 451 with when to try again, and nothing was sent.
func TestThrottled(t *testing.T) {
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{World: testWorld})
	v := start(t, srv, "sender", smtpgw.Options{})
	c := v.dial(t, "alice")
	if err := srv.AddFault(mailoauthtest.Fault{Endpoint: "graph", Status: 429, Times: 2}); err != nil {
		t.Fatal(err)
	}
	subject := uniqueSubject(t)
	raw := build(t, mail.Draft{From: []string{alice}, To: []string{bob}, Subject: subject, Text: "slowly"})
	if err := c.SendMail(alice, []string{bob}, bytes.NewReader(raw)); err != nil {
		t.Fatalf("SendMail through two 429s: %v", err)
	}
	if got := inFolder(t, srv, bob, mailoauthtest.Inbox, subject); len(got) != 1 {
		t.Fatalf("bob has %d copies, want 1", len(got))
	}

	srv.ClearFaults()
	short := start(t, srv, "sender", smtpgw.Options{})
	short.mb.Graph.MaxDelay = 100 * time.Millisecond // less than the 1 s Graph asks for
	if err := srv.AddFault(mailoauthtest.Fault{Endpoint: "graph", Status: 429}); err != nil {
		t.Fatal(err)
	}
	c = short.dial(t, "alice")
	subject = uniqueSubject(t)
	raw = build(t, mail.Draft{From: []string{alice}, To: []string{bob}, Subject: subject, Text: "never"})
	se := wantCode(t, c.SendMail(alice, []string{bob}, bytes.NewReader(raw)), 451, smtp.EnhancedCode{4, 4, 5})
	if !strings.Contains(se.Message, "429") || !strings.Contains(se.Message, "try again in 1s") {
		t.Errorf("the reply does not give Graph's status and Retry-After: %q", se.Message)
	}
	srv.ClearFaults()
	if got := inFolder(t, srv, bob, mailoauthtest.Inbox, subject); len(got) != 0 {
		t.Errorf("the message refused with 451 was delivered %d times", len(got))
	}
}

// TestNoMailSend: an app without Mail.Send gets Graph's 403; the program is told 550 5.7.1 and the
// log says the doctor's finding, cause and fix.
func TestNoMailSend(t *testing.T) {
	v := start(t, emulator(t), "nosend", smtpgw.Options{})
	c := v.dial(t, "alice")
	subject := uniqueSubject(t)
	raw := build(t, mail.Draft{From: []string{alice}, To: []string{bob}, Subject: subject, Text: "x"})
	se := wantCode(t, c.SendMail(alice, []string{bob}, bytes.NewReader(raw)), 550, smtp.EnhancedCode{5, 7, 1})
	if !strings.Contains(se.Message, "403") {
		t.Errorf("the reply does not give Graph's words: %q", se.Message)
	}
	log := v.log.String()
	for _, want := range []string{"MO-GRAPH-SEND-MISSING", "Mail.Send", "request_id="} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	if got := inFolder(t, v.srv, bob, mailoauthtest.Inbox, subject); len(got) != 0 {
		t.Errorf("bob got a message Graph refused")
	}
}

// TestSession: EHLO's extensions; mail before AUTH is refused (not a relay); a wrong password is
// 535 with the proxy's words, a temporary refusal 454; AUTH LOGIN works; Closed is called once.
func TestSession(t *testing.T) {
	v := start(t, emulator(t), "sender", smtpgw.Options{Hostname: "gw.test"})
	c := v.dial(t, "")
	for _, ext := range []string{"SIZE", "8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES", "CHUNKING", "AUTH"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO does not offer %s", ext)
		}
	}
	if _, mechs := c.Extension("AUTH"); mechs != "PLAIN LOGIN" {
		t.Errorf("AUTH %q, want PLAIN LOGIN", mechs)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Errorf("STARTTLS offered without a TLS configuration")
	}
	wantCode(t, c.Mail(alice, nil), 530, smtp.EnhancedCode{5, 7, 0})
	se := wantCode(t, c.Auth(sasl.NewPlainClient("", "alice", "wrong")), 535, smtp.EnhancedCode{5, 7, 8})
	if se.Message != "Wrong user name or password." {
		t.Errorf("535 says %q", se.Message)
	}
	wantCode(t, c.Auth(sasl.NewPlainClient("", "busy", password)), 454, smtp.EnhancedCode{4, 7, 0})
	if err := c.Auth(sasl.NewLoginClient("alice", password)); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if err := c.Mail(alice, nil); err != nil {
		t.Fatalf("MAIL after AUTH: %v", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, v, 1)
	if strings.Contains(v.log.String(), password) || strings.Contains(v.log.String(), "wrong") {
		t.Errorf("the log shows a password:\n%s", v.log.String())
	}
}

// TestPreAuthBounds: before AUTH the gateway reads at most PreAuthBytes, however the bytes come
// (a stream of commands, one endless line), then closes the connection: what it holds cannot grow
// with what a client sends before logging in.
func TestPreAuthBounds(t *testing.T) {
	const limit = 8 << 10
	v := start(t, emulator(t), "sender", smtpgw.Options{PreAuthBytes: limit})
	for _, tc := range []struct {
		name  string
		chunk []byte
	}{
		{"commands", []byte("NOOP\r\n")},
		{"one line", []byte("EHLO aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe() // unbuffered: what the client wrote, the gateway read
			if err := v.ln.Push(server, v.handoff()); err != nil {
				t.Fatal(err)
			}
			go io.Copy(io.Discard, client)
			var written int64
			for written < 10<<20 {
				n, err := client.Write(tc.chunk)
				written += int64(n)
				if err != nil {
					break
				}
			}
			client.Close()
			if written > limit {
				t.Errorf("the gateway read %d bytes before AUTH, more than %d", written, limit)
			}
		})
	}
	if v.logins.Load() != 0 {
		t.Errorf("Login was called")
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("the spool directory keeps %v", entries)
	}
}

// serverTLS is a certificate for gw.test and a client configuration that trusts only it.
func serverTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw.test"}, DNSNames: []string{"gw.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12},
		&tls.Config{RootCAs: pool, ServerName: "gw.test", MinVersion: tls.VersionTLS12}
}

// TestSTARTTLS: with a TLS configuration, EHLO offers STARTTLS and AUTH needs it first; after it,
// the program logs in and sends.
func TestSTARTTLS(t *testing.T) {
	serverConf, clientConf := serverTLS(t)
	v := start(t, emulator(t), "sender", smtpgw.Options{TLS: serverConf})
	clear := v.dial(t, "")
	if ok, _ := clear.Extension("STARTTLS"); !ok {
		t.Fatal("EHLO does not offer STARTTLS")
	}
	if ok, _ := clear.Extension("AUTH"); ok {
		t.Error("EHLO offers AUTH before TLS")
	}
	wantCode(t, clear.Auth(sasl.NewPlainClient("", "alice", password)), 523, smtp.EnhancedCode{5, 7, 10})
	if v.logins.Load() != 0 {
		t.Fatal("the password was checked in clear")
	}
	c, err := smtp.DialStartTLS(v.addr, clientConf)
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice", password)); err != nil {
		t.Fatalf("AUTH after STARTTLS: %v", err)
	}
	subject := uniqueSubject(t)
	raw := build(t, mail.Draft{From: []string{alice}, To: []string{bob}, Subject: subject, Text: "over TLS"})
	if err := c.SendMail(alice, []string{bob}, bytes.NewReader(raw)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if got := inFolder(t, v.srv, bob, mailoauthtest.Inbox, subject); len(got) != 1 {
		t.Fatalf("bob has %d copies, want 1", len(got))
	}
}

// TestImplicitTLS: a connection pushed as its *tls.Conn may AUTH at once (and is offered no
// STARTTLS), though the Server requires STARTTLS of connections in clear; a connection that
// closes before saying anything is still reported Closed.
func TestImplicitTLS(t *testing.T) {
	serverConf, clientConf := serverTLS(t)
	v := start(t, emulator(t), "sender", smtpgw.Options{TLS: serverConf})
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			if err := v.ln.Push(tls.Server(c, serverConf), v.handoff()); err != nil {
				c.Close()
			}
		}
	}()
	conn, err := tls.Dial("tcp", tl.Addr().String(), clientConf)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered on a TLS connection")
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", password)); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	subject := uniqueSubject(t)
	raw := build(t, mail.Draft{From: []string{alice}, To: []string{bob}, Subject: subject, Text: "implicit TLS"})
	if err := c.SendMail(alice, []string{bob}, bytes.NewReader(raw)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if got := inFolder(t, v.srv, bob, mailoauthtest.Inbox, subject); len(got) != 1 {
		t.Fatalf("bob has %d copies, want 1", len(got))
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	silent, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	silent.Close()
	waitClosed(t, v, 2)
}

// TestShutdown: Shutdown ends a session that does not end by itself once its deadline passes, the
// proxy is told, and connections pushed afterwards are closed at once.
func TestShutdown(t *testing.T) {
	v := start(t, emulator(t), "sender", smtpgw.Options{})
	c := v.dial(t, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.gw.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with an idle session and no time: %v, want context.Canceled", err)
	}
	if err := c.Noop(); err == nil {
		t.Error("the session goes on after Shutdown")
	}
	waitClosed(t, v, 1)
	late, err := smtp.Dial(v.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if err := late.Hello("client.test"); err == nil {
		t.Error("a connection after Shutdown was greeted")
	}
	waitClosed(t, v, 2)
}

// TestPipelinedBDAT: a program that writes its whole transaction at once (PIPELINING) and gives
// the message with BDAT (CHUNKING) is answered in order, and the message arrives.
func TestPipelinedBDAT(t *testing.T) {
	v := start(t, emulator(t), "sender", smtpgw.Options{})
	subject := uniqueSubject(t)
	raw := build(t, mail.Draft{From: []string{alice}, To: []string{bob}, Subject: subject, Text: "in one chunk"})
	nc, err := net.Dial("tcp", v.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tp := textproto.NewConn(nc)
	if _, _, err := tp.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	ir := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + password))
	all := "EHLO client.test\r\nAUTH PLAIN " + ir + "\r\nMAIL FROM:<" + alice + ">\r\nRCPT TO:<" + bob + ">\r\n" +
		fmt.Sprintf("BDAT %d LAST\r\n", len(raw)) + string(raw) + "QUIT\r\n"
	if _, err := io.WriteString(nc, all); err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{250, 235, 250, 250, 250, 221} {
		if c, msg, err := tp.ReadResponse(code); err != nil {
			t.Fatalf("want %d: %d %s (%v)", code, c, msg, err)
		}
	}
	if got := inFolder(t, v.srv, bob, mailoauthtest.Inbox, subject); len(got) != 1 {
		t.Fatalf("bob has %d copies, want 1", len(got))
	}
}

// TestMaxMessage: EHLO's SIZE is Gateway.MaxMessage; a MAIL FROM declaring more, and a message
// that turns out larger, are refused 552 5.3.4, and nothing is sent.
func TestMaxMessage(t *testing.T) {
	v := start(t, emulator(t), "sender", smtpgw.Options{Gateway: gateway.Options{MaxMessage: 2 << 20}})
	c := v.dial(t, "alice")
	if _, size := c.Extension("SIZE"); size != "2097152" {
		t.Errorf("SIZE %q, want 2097152", size)
	}
	wantCode(t, c.Mail(alice, &smtp.MailOptions{Size: 3 << 20}), 552, smtp.EnhancedCode{5, 3, 4})
	subject := uniqueSubject(t)
	raw := build(t, mail.Draft{From: []string{alice}, To: []string{bob}, Subject: subject, Text: strings.Repeat("long line of text\r\n", 3<<20/19)})
	wantCode(t, c.SendMail(alice, []string{bob}, bytes.NewReader(raw)), 552, smtp.EnhancedCode{5, 3, 4})
	if got := inFolder(t, v.srv, bob, mailoauthtest.Inbox, subject); len(got) != 0 {
		t.Errorf("bob got the message over the limit")
	}
}
