package mailoauthtest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/graph"
	imapc "github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/mailoauthtest"
	smtpc "github.com/mailoauth/mailoauth/smtp"
	"github.com/mailoauth/mailoauth/token"
)

// account builds an auth account from one of the Server's (no store: tokens in memory).
func account(t *testing.T, acc *config.Account, opts auth.Options) *auth.Account {
	t.Helper()
	if acc == nil {
		t.Fatal("the Server has no such account")
	}
	a, err := auth.NewAccount(acc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// send submits one message over SMTP as a.
func send(t *testing.T, ctx context.Context, a token.Account, to, subject string) {
	t.Helper()
	c, err := smtpc.Dial(ctx, smtpc.ForAccount(a))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "From: " + a.Mailbox() + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
	if err := c.SendMail(a.Mailbox(), []string{to}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

// inboxSubjects reads the subjects of a's INBOX over IMAP.
func inboxSubjects(t *testing.T, ctx context.Context, a token.Account) []string {
	t.Helper()
	c, err := imapc.Dial(ctx, imapc.ForAccount(a))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.Envelope.Subject)
	}
	return out
}

func subjects(t *testing.T, srv *mailoauthtest.Server, mailbox, folder string) []string {
	t.Helper()
	msgs, err := srv.Messages(mailbox)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if m.Folder == folder {
			out = append(out, m.Subject)
		}
	}
	return out
}

// The default world's daemon sends to bob over SMTP; bob's mailbox holds it, over IMAP (daemon-bob)
// and in Messages.
func TestDefaultWorldSendAndRead(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{})
	for _, name := range []string{"alice", "alice-device", "daemon", "daemon-bob", "daemon-cert"} {
		if srv.Account(name) == nil {
			t.Errorf("the default world has no account %q", name)
		}
	}
	daemon, cert := srv.Account("daemon"), srv.Account("daemon-cert")
	if daemon.ClientSecret == "" || daemon.ClientSecretFile != "" || len(cert.PFX) == 0 || cert.Certificate != "" {
		t.Errorf("the credentials are not values: ClientSecret set %v, ClientSecretFile %q, PFX set %v, Certificate %q",
			daemon.ClientSecret != "", daemon.ClientSecretFile, len(cert.PFX) > 0, cert.Certificate)
	}
	if daemon.RootCAs == nil || daemon.CAFile != "" {
		t.Errorf("the account's trust: RootCAs set %v, CAFile %q", daemon.RootCAs != nil, daemon.CAFile)
	}
	send(t, ctx, account(t, daemon, auth.Options{}), "bob@contoso.test", "default world")
	if got := inboxSubjects(t, ctx, account(t, srv.Account("daemon-bob"), auth.Options{})); len(got) != 1 || got[0] != "default world" {
		t.Fatalf("bob's INBOX over IMAP: %q, want [default world]", got)
	}
	if got := subjects(t, srv, "bob@contoso.test", mailoauthtest.Inbox); len(got) != 1 || got[0] != "default world" {
		t.Fatalf("Messages(bob) INBOX: %q", got)
	}
	// The certificate account works as well (its PFX is a value).
	if got := inboxSubjects(t, ctx, account(t, srv.Account("daemon-cert"), auth.Options{})); len(got) != 0 {
		t.Fatalf("alice's INBOX: %q, want it empty", got)
	}
}

// A world built in Go with one user and one app: the app's account sends to its user over SMTP and
// reads it back over IMAP.
func TestGoWorld(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{World: &mailoauthtest.World{
		Users: []mailoauthtest.User{{Address: "carol@fabrikam.test"}},
		Apps:  []mailoauthtest.App{{Name: "mailer", Flow: config.FlowClientCredentials}},
	}})
	acc := srv.Account("mailer")
	if acc == nil || acc.Mailbox != "carol@fabrikam.test" || acc.Flow != config.FlowClientCredentials {
		t.Fatalf("account mailer: %+v", acc)
	}
	if srv.Account("daemon") != nil {
		t.Fatal("a Go world has the default world's daemon")
	}
	a := account(t, acc, auth.Options{})
	send(t, ctx, a, "carol@fabrikam.test", "from Go")
	if got := inboxSubjects(t, ctx, a); len(got) != 1 || got[0] != "from Go" {
		t.Fatalf("carol's INBOX: %q", got)
	}
}

// A Go world's password (ROPC) app signs its user in with the password the World gave, as a value.
func TestGoWorldPassword(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{World: &mailoauthtest.World{
		Users: []mailoauthtest.User{{Address: "erin@fabrikam.test", Password: "s3cret"}},
		Apps:  []mailoauthtest.App{{Name: "legacy", Flow: config.FlowPassword}},
	}})
	acc := srv.Account("legacy")
	if string(acc.Password) != "s3cret" || acc.Email != "erin@fabrikam.test" {
		t.Fatalf("account legacy: password set %v, email %q", acc.Password != "", acc.Email)
	}
	a := account(t, acc, auth.Options{})
	if _, err := a.Login(ctx, auth.LoginOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := inboxSubjects(t, ctx, a); len(got) != 0 {
		t.Fatalf("erin's INBOX: %q", got)
	}
}

// A Go world's mistakes name the field.
func TestGoWorldErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		w    mailoauthtest.World
		want string
	}{
		{mailoauthtest.World{}, "World.Users is empty"},
		{mailoauthtest.World{Users: []mailoauthtest.User{{Address: "Carol <carol@x.test>"}}}, "World.Users[0].Address"},
		{mailoauthtest.World{Users: []mailoauthtest.User{{Address: "c@x.test"}}, Apps: []mailoauthtest.App{{Name: "a b"}}}, "World.Apps[0].Name"},
		{mailoauthtest.World{Users: []mailoauthtest.User{{Address: "c@x.test"}}, Apps: []mailoauthtest.App{{Name: "a", Flow: "devic"}}}, "World.Apps[0].Flow"},
		{mailoauthtest.World{Users: []mailoauthtest.User{{Address: "c@x.test"}}, Apps: []mailoauthtest.App{{Name: "a", ClientID: "nope"}}}, "World.Apps[0].ClientID"},
		{mailoauthtest.World{Users: []mailoauthtest.User{{Address: "c@x.test"}}, Apps: []mailoauthtest.App{{Name: "a", Permissions: []string{"IMAP.AccessAsApp"}}}}, "World.Apps[0].Permissions"},
		{mailoauthtest.World{Users: []mailoauthtest.User{{Address: "c@x.test"}}, Apps: []mailoauthtest.App{{Name: "a", Mailbox: "d@x.test"}}}, "World.Apps[0].Mailbox"},
		{mailoauthtest.World{Users: []mailoauthtest.User{{Address: "c@x.test"}}, Apps: []mailoauthtest.App{{Name: "a", Flow: config.FlowInteractive, RedirectURI: "https://x.test/cb"}}}, "World.Apps[0].RedirectURI"},
		{mailoauthtest.World{Users: []mailoauthtest.User{{Address: "c@x.test"}}, Apps: []mailoauthtest.App{{Name: "a", RedirectURI: "http://localhost"}}}, "World.Apps[0].RedirectURI"},
	} {
		_, err := mailoauthtest.Start(context.Background(), mailoauthtest.Options{World: &c.w})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error naming %s", c.w, err, c.want)
		}
	}
	if _, err := mailoauthtest.Start(context.Background(), mailoauthtest.Options{World: &mailoauthtest.World{}, Scenario: "x"}); err == nil {
		t.Error("World and Scenario together were accepted")
	}
}

// A Go world's permissions are what its tokens carry: an app granted only SMTP cannot read over IMAP.
func TestGoWorldPermissions(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{World: &mailoauthtest.World{
		Users: []mailoauthtest.User{{Address: "carol@fabrikam.test"}},
		Apps:  []mailoauthtest.App{{Name: "sender", Flow: config.FlowClientCredentials, Permissions: []string{"SMTP.SendAsApp"}}},
	}})
	a := account(t, srv.Account("sender"), auth.Options{})
	send(t, ctx, a, "carol@fabrikam.test", "sent")
	if _, err := imapc.Dial(ctx, imapc.ForAccount(a)); err == nil {
		t.Fatal("IMAP accepted a token without IMAP.AccessAsApp")
	}
}

const scenario = `
[tenants.northwind]
domains = ["northwind.test"]

[[tenants.northwind.users]]
upn = "dave@northwind.test"
password = "dave-password"

[apps.robot]
tenant = "northwind"
application = ["IMAP.AccessAsApp", "SMTP.SendAsApp"]
admin_consented = true

[[tenants.northwind.exchange_service_principals]]
app = "robot"
full_access = ["dave@northwind.test"]
`

// A scenario given as TOML text: its derived account (named after the app) works end to end.
func TestScenarioText(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{Scenario: scenario})
	acc := srv.Account("robot")
	if acc == nil {
		t.Fatal("the scenario's app robot has no account of its name")
	}
	a := account(t, acc, auth.Options{})
	send(t, ctx, a, "dave@northwind.test", "from a scenario")
	if got := inboxSubjects(t, ctx, a); len(got) != 1 || got[0] != "from a scenario" {
		t.Fatalf("dave's INBOX: %q", got)
	}
	if _, err := mailoauthtest.Start(ctx, mailoauthtest.Options{Scenario: "[apps.x]\npublic = 3\n"}); err == nil {
		t.Fatal("an invalid scenario was accepted")
	}
}

// A device-code login is approved with ApproveDevice; afterwards tokens are silent.
func TestApproveDevice(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{})
	a := account(t, srv.Account("alice-device"), auth.Options{})
	codes := make(chan auth.DeviceCode, 1)
	done := make(chan error, 1)
	go func() {
		_, err := a.Login(ctx, auth.LoginOptions{DeviceCode: func(dc auth.DeviceCode) { codes <- dc }})
		done <- err
	}()
	var dc auth.DeviceCode
	select {
	case dc = <-codes:
	case err := <-done:
		t.Fatalf("the login ended before showing a code: %v", err)
	}
	if err := srv.ApproveDevice("WRONGCODE", "alice@contoso.test"); err == nil {
		t.Fatal("an unknown user code was approved")
	}
	if err := srv.ApproveDevice(dc.UserCode, "alice@contoso.test"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	send(t, ctx, a, "bob@contoso.test", "after device login")
	if got := subjects(t, srv, "bob@contoso.test", mailoauthtest.Inbox); len(got) != 1 {
		t.Fatalf("bob's INBOX: %q", got)
	}
}

// SignIn drives a web app's authorization-code login: the code it returns is exchanged for alice's
// tokens; a wrong password is an error and no redirect.
func TestSignInWebApp(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{World: &mailoauthtest.World{
		Users: []mailoauthtest.User{{Address: "alice@contoso.test"}, {Address: "bob@contoso.test", Password: "b0b"}},
		Apps:  []mailoauthtest.App{{Name: "web", Flow: config.FlowAuthCodeWeb, RedirectURI: "https://app.contoso.test/callback"}},
	}})
	acc := srv.Account("web")
	if acc.RedirectURI != "https://app.contoso.test/callback" || acc.ClientSecret == "" || acc.Email != "" {
		t.Fatalf("account web: redirect %q, secret set %v, email %q", acc.RedirectURI, acc.ClientSecret != "", acc.Email)
	}
	a := account(t, acc, auth.Options{})
	authURL, verifier, err := a.AuthCodeURL(ctx, "st4te", auth.AuthCodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SignIn(ctx, authURL, "bob@contoso.test", "wrong"); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("a wrong password: %v", err)
	}
	back, err := srv.SignIn(ctx, authURL, "bob@contoso.test", "b0b")
	if err != nil {
		t.Fatal(err)
	}
	if back.Host != "app.contoso.test" || back.Path != "/callback" || back.Query().Get("state") != "st4te" || back.Query().Get("code") == "" {
		t.Fatalf("redirect %s://%s%s with state %q, code set %v", back.Scheme, back.Host, back.Path, back.Query().Get("state"), back.Query().Get("code") != "")
	}
	in, err := a.ExchangeCode(ctx, back.Query().Get("code"), verifier, auth.AuthCodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in.User.Username != "bob@contoso.test" {
		t.Fatalf("signed in %q, want bob", in.User.Username)
	}
	send(t, ctx, a.ForUser(in.User), "alice@contoso.test", "from bob's web session")
	if got := subjects(t, srv, "alice@contoso.test", mailoauthtest.Inbox); len(got) != 1 {
		t.Fatalf("alice's INBOX: %q", got)
	}
	if _, err := srv.SignIn(ctx, "https://login.microsoftonline.com/common/oauth2/v2.0/authorize", "bob@contoso.test", "b0b"); err == nil {
		t.Fatal("SignIn sent a password to another server")
	}
}

// Deliver seeds a mailbox that IMAP then reads; Messages sees it too.
func TestDeliver(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	now := time.Now().Add(-time.Minute).Truncate(time.Second)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{Now: func() time.Time { return now }})
	if err := srv.Deliver("alice@contoso.test", []byte("From: x@example.test\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := inboxSubjects(t, ctx, account(t, srv.Account("daemon"), auth.Options{})); len(got) != 1 || got[0] != "café" {
		t.Fatalf("alice's INBOX: %q", got)
	}
	msgs, err := srv.Messages("alice@contoso.test")
	if err != nil || len(msgs) != 1 || msgs[0].Subject != "café" || msgs[0].Folder != mailoauthtest.Inbox || !msgs[0].Received.Equal(now) {
		t.Fatalf("Messages: %v %+v, want one in INBOX received at the Server's clock's %v", err, msgs, now)
	}
	if err := srv.Deliver("nobody@contoso.test", []byte("Subject: x\r\n\r\n")); err == nil {
		t.Fatal("delivered to a mailbox the world does not have")
	}
	if _, err := srv.Messages("nobody@contoso.test"); err == nil {
		t.Fatal("listed a mailbox the world does not have")
	}
}

// Close stops every listener: connections are then refused.
func TestCloseStopsListeners(t *testing.T) {
	t.Parallel()
	srv, err := mailoauthtest.Start(context.Background(), mailoauthtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{srv.IMAP(), srv.POP(), srv.SMTP(), strings.TrimPrefix(srv.Authority(), "https://"),
		strings.TrimSuffix(strings.TrimPrefix(srv.GraphURL(), "https://"), "/v1.0")}
	for _, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("%s before Close: %v", addr, err)
		}
		c.Close()
	}
	srv.Close()
	srv.Close() // twice is fine
	for _, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", addr)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s after Close: %v, want connection refused", addr, err)
		}
	}
}

// An interactive login (MSAL's loopback listener, form_post) is driven by SignIn as its OpenURL.
func TestSignInInteractive(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{})
	a := account(t, srv.Account("alice"), auth.Options{})
	opened := 0
	_, err := a.Login(ctx, auth.LoginOptions{OpenURL: func(u string) error {
		opened++
		_, err := srv.SignIn(ctx, u, "alice@contoso.test", "alice-password")
		return err
	}})
	if err != nil || opened != 1 {
		t.Fatalf("login: %v (the URL was opened %d times)", err, opened)
	}
	send(t, ctx, a, "bob@contoso.test", "after an interactive login")
	if got := subjects(t, srv, "bob@contoso.test", mailoauthtest.Inbox); len(got) != 1 {
		t.Fatalf("bob's INBOX: %q", got)
	}
}

// With AutoApprove, a device-code login completes with nobody approving it.
func TestAutoApprove(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{AutoApprove: "bob@contoso.test"})
	acc := srv.Account("alice-device")
	acc.Email = "bob@contoso.test"
	a := account(t, acc, auth.Options{})
	if _, err := a.Login(ctx, auth.LoginOptions{DeviceCode: func(auth.DeviceCode) {}}); err != nil {
		t.Fatal(err)
	}
	send(t, ctx, a, "alice@contoso.test", "auto-approved")
	if got := subjects(t, srv, "bob@contoso.test", "Sent Items"); len(got) != 1 || got[0] != "auto-approved" {
		t.Fatalf("bob's Sent Items: %q", got)
	}
	if _, err := srv.SignIn(ctx, srv.Authority()+"/contoso/oauth2/v2.0/authorize", "alice@contoso.test", "alice-password"); err == nil {
		t.Fatal("SignIn signed alice in on a Server that signs bob in itself")
	}
}

// A scenario file is read from its path; a missing one is an error.
func TestScenarioFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "world.toml")
	if err := os.WriteFile(path, []byte(scenario), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{ScenarioFile: path})
	if srv.Account("robot") == nil {
		t.Fatal("the scenario's app robot has no account of its name")
	}
	if _, err := mailoauthtest.Start(context.Background(), mailoauthtest.Options{ScenarioFile: path + ".missing"}); err == nil {
		t.Fatal("a missing scenario file was accepted")
	}
}

// Graph answers at GraphURL over the same mailboxes: a delivered message is listed there, and one
// sent through Graph arrives in the recipient's INBOX.
func TestGraph(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{})
	if err := srv.Deliver("alice@contoso.test", []byte("Subject: seeded\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	g := graph.ForAccount(account(t, srv.Account("daemon"), auth.Options{}))
	msgs, err := g.ListMessages(ctx, "inbox", graph.ListOptions{})
	if err != nil || len(msgs) != 1 || msgs[0].Subject != "seeded" {
		t.Fatalf("alice's inbox over Graph: %v %+v", err, msgs)
	}
	if err := g.SendMail(ctx, &graph.Message{Subject: "over Graph", To: []graph.Address{{Address: "bob@contoso.test"}}, Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	if got := subjects(t, srv, "bob@contoso.test", mailoauthtest.Inbox); len(got) != 1 || got[0] != "over Graph" {
		t.Fatalf("bob's INBOX: %q", got)
	}
}
