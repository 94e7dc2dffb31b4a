package events_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	imapc "github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	smtpc "github.com/mailoauth/mailoauth/smtp"
	"github.com/mailoauth/mailoauth/token"
)

// brief is what a scenario asserts of an event: everything but its Seq, time and size.
func brief(e events.Event) string {
	return strings.Join([]string{string(e.Kind), e.Protocol, e.Grant, e.App, e.User, e.Mailbox, e.Code}, " ")
}

func briefs(evs []events.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, brief(e))
	}
	return out
}

// account is one of the lab's accounts, with tokens in memory.
func account(t *testing.T, lab *emulatortest.Lab, name string) *auth.Account {
	t.Helper()
	accs, err := lab.E.Accounts()
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAccount(accs[name], auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sendMail submits one message over SMTP as a, with XOAUTH2.
func sendMail(t *testing.T, ctx context.Context, a token.Account, to, subject string) {
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

// basicSMTPLogin tries AUTH LOGIN with bob's password, which Exchange Online refuses.
func basicSMTPLogin(t *testing.T, lab *emulatortest.Lab) error {
	t.Helper()
	addr := lab.E.MailAddrs["smtp"]
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	host, _, _ := strings.Cut(addr, ":")
	if err := c.StartTLS(&tls.Config{RootCAs: lab.E.CAPool(), ServerName: host}); err != nil {
		t.Fatal(err)
	}
	return c.Auth(loginAuth{world.Bob, "bob-password"})
}

// loginAuth is AUTH LOGIN, the basic mechanism Exchange Online offers after STARTTLS.
type loginAuth struct{ user, password string }

func (a loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	switch {
	case !more:
		return nil, nil
	case strings.HasPrefix(strings.ToLower(string(challenge)), "username"):
		return []byte(a.user), nil
	default:
		return []byte(a.password), nil
	}
}

// TestEventsOfAScenario drives the emulator as an app would — a client-credentials token, one refused
// for a wrong secret, mail sent over SMTP, a basic-auth SMTP login, an IMAP login, a delivery that a
// long poll waits for — and reads what happened through the HTTP handler, in order.
func TestEventsOfAScenario(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lab := emulatortest.Start(t, emulator.Options{})
	srv := httptest.NewServer(events.Handler(lab.E.Events))
	defer srv.Close()

	daemon := account(t, lab, "daemon")
	sendMail(t, ctx, daemon, world.Bob, "first")

	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {world.DaemonClientID},
		"client_secret": {"not-the-secret"}, "scope": {world.ExchangeResource + "/.default"}}
	resp, err := lab.E.HTTPClient().PostForm(lab.E.TenantAuthority(world.DefaultTenantName)+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong secret got %s", resp.Status)
	}
	if err := basicSMTPLogin(t, lab); err == nil {
		t.Fatal("Exchange accepted a password over SMTP")
	}
	c, err := imapc.Dial(ctx, imapc.ForAccount(account(t, lab, "daemon-bob")))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	got, cursor := get(t, srv.Client(), srv.URL)
	want := []string{
		"token.issued identity client_credentials daemon   ",
		"auth.accepted smtp  daemon alice@contoso.test alice@contoso.test ",
		"message.delivered     bob@contoso.test ",
		"token.refused identity client_credentials daemon   AADSTS7000215",
		"auth.refused smtp   bob@contoso.test  basic_auth_disabled",
		"token.issued identity client_credentials daemon   ",
		"auth.accepted imap  daemon bob@contoso.test bob@contoso.test ",
	}
	if fmt.Sprint(briefs(got)) != fmt.Sprint(want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(briefs(got), "\n"), strings.Join(want, "\n"))
	}
	for _, e := range got {
		if e.ClientID != "" && !strings.EqualFold(e.ClientID, world.DaemonClientID) {
			t.Errorf("event %d names client %q", e.Seq, e.ClientID)
		}
		if e.Kind == events.AuthRefused && !strings.Contains(e.Reason, "XOAUTH2") {
			t.Errorf("the refused login's reason %q does not say what to use instead", e.Reason)
		}
		if e.Kind == events.TokenRefused && !strings.Contains(e.Reason, "Invalid client secret") {
			t.Errorf("the refused token's reason %q does not say the secret was wrong", e.Reason)
		}
		if strings.Contains(e.Reason, "bob-password") || strings.Contains(e.Reason, "not-the-secret") {
			t.Errorf("event %d quotes a secret", e.Seq)
		}
	}
	if got[2].Size == 0 {
		t.Error("the delivery has no size")
	}

	// The refusal by filter, then a long poll past the cursor that a real delivery wakes.
	refused, _ := get(t, srv.Client(), srv.URL+"?kind=auth.refused,token.refused&protocol=smtp")
	if len(refused) != 1 || refused[0].Seq != got[4].Seq {
		t.Fatalf("kind and protocol filter: %v", briefs(refused))
	}
	type answer struct {
		resp *http.Response
		err  error
	}
	done := make(chan answer, 1)
	pollURL := srv.URL + "?kind=message.delivered&wait=60s&since=" + strconv.FormatUint(cursor, 10)
	go func() {
		resp, err := srv.Client().Get(pollURL)
		done <- answer{resp, err}
	}()
	waitFor(t, func() bool { return events.Waiting(lab.E.Events) == 1 })
	sendMail(t, ctx, daemon, world.Bob, "second") // no new token: the daemon's is still valid
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	polled, next := decode(t, pollURL, a.resp)
	if fmt.Sprint(briefs(polled)) != "[message.delivered     bob@contoso.test ]" || polled[0].Seq != cursor+2 || next != cursor+2 {
		t.Fatalf("long poll after %d: %v (seq %v), cursor %d", cursor, briefs(polled), polled, next)
	}
}

// TestTokenEventsNameTheUser: a delegated token's events name the user, whether the request names
// them (password) or only its refresh token knows them (refresh_token).
func TestTokenEventsNameTheUser(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lab := emulatortest.Start(t, emulator.Options{})
	accs, err := lab.E.Accounts()
	if err != nil {
		t.Fatal(err)
	}
	acc := accs["alice-device"]
	acc.Flow, acc.Email, acc.Password = config.FlowPassword, world.Bob, "bob-password"
	bob, err := auth.NewAccount(acc, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Token(ctx, token.Exchange); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Refresh(ctx, token.Exchange); err != nil {
		t.Fatal(err)
	}
	got := lab.E.Events.Since(0, events.Filter{Kinds: []events.Kind{events.TokenIssued}}.Match, 0)
	want := []string{
		"token.issued identity password desktop bob@contoso.test  ",
		"token.issued identity refresh_token desktop bob@contoso.test  ",
	}
	if fmt.Sprint(briefs(got)) != fmt.Sprint(want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(briefs(got), "\n"), strings.Join(want, "\n"))
	}
}

// TestGraphRefusalNamesTheApp: Graph's refusal of a verified token (an app-only token for /me, a
// mailbox that does not exist) names its app, not only the refusal's code.
func TestGraphRefusalNamesTheApp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lab := emulatortest.Start(t, emulator.Options{})
	tok, err := account(t, lab, "daemon").Token(ctx, token.Graph)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/me/messages", "/users/nobody@contoso.test/messages"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, lab.E.MailAddrs["graph"]+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := lab.E.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("GET %s with the daemon's token: %s", path, resp.Status)
		}
	}
	got := lab.E.Events.Since(0, events.Filter{Protocol: "graph"}.Match, 0)
	want := []string{
		"auth.refused graph  daemon   BadRequest",
		"auth.refused graph  daemon   ErrorInvalidUser",
	}
	if fmt.Sprint(briefs(got)) != fmt.Sprint(want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(briefs(got), "\n"), strings.Join(want, "\n"))
	}
}
