package mailoauthtest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/mailoauthtest"
	smtpc "github.com/mailoauth/mailoauth/smtp"
	"github.com/mailoauth/mailoauth/token"
)

func kinds(evs []mailoauthtest.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, string(e.Kind)+" "+e.Protocol+" "+e.User+" "+e.Mailbox+" "+e.Code)
	}
	return strings.Join(s, "\n")
}

// TestEventsAndWaitEvent: a program that sends twice asks for one token; the events say so, filter
// by kind and mailbox, and WaitEvent returns what comes after a given Seq, or gives up with ctx.
func TestEventsAndWaitEvent(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{})
	daemon := account(t, srv.Account("daemon-bob"), auth.Options{})
	send(t, ctx, daemon, "alice@contoso.test", "one")
	send(t, ctx, daemon, "alice@contoso.test", "two")

	tokens := srv.Events(mailoauthtest.EventFilter{Kinds: []mailoauthtest.EventKind{mailoauthtest.TokenIssued, mailoauthtest.TokenRefused}})
	if len(tokens) != 1 || tokens[0].App != "daemon" || tokens[0].Grant != "client_credentials" {
		t.Fatalf("token events:\n%s\nwant one client_credentials token of daemon", kinds(tokens))
	}
	delivered := srv.Events(mailoauthtest.EventFilter{Kinds: []mailoauthtest.EventKind{mailoauthtest.MessageDelivered}, Mailbox: "ALICE@contoso.test"})
	if len(delivered) != 2 || delivered[0].Size == 0 {
		t.Fatalf("deliveries to alice:\n%s", kinds(delivered))
	}
	all := srv.Events(mailoauthtest.EventFilter{})
	last := all[len(all)-1].Seq
	if got := srv.Events(mailoauthtest.EventFilter{After: last}); len(got) != 0 {
		t.Fatalf("events after the last: %v", got)
	}

	// A wait for the next delivery, begun before it happens, returns it.
	type result struct {
		e   mailoauthtest.Event
		err error
	}
	done := make(chan result, 1)
	go func() {
		e, err := srv.WaitEvent(ctx, mailoauthtest.EventFilter{After: last, Kinds: []mailoauthtest.EventKind{mailoauthtest.MessageDelivered}})
		done <- result{e, err}
	}()
	if err := srv.Deliver("bob@contoso.test", []byte("Subject: from outside\r\n\r\nHi.\r\n")); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.e.Mailbox != "bob@contoso.test" || r.e.Seq != last+1 {
		t.Fatalf("WaitEvent: %+v, %v; want the delivery to bob, seq %d", r.e, r.err, last+1)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := srv.WaitEvent(short, mailoauthtest.EventFilter{After: r.e.Seq}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitEvent with nothing to come: %v, want the context's deadline", err)
	}
}

// passwordAccount signs in as user with ROPC through the default world's public app.
func passwordAccount(t *testing.T, srv *mailoauthtest.Server, user string) *auth.Account {
	t.Helper()
	acc := srv.Account("alice-device")
	acc.Flow, acc.Email, acc.Password = config.FlowPassword, user, config.Secret(strings.Split(user, "@")[0]+"-password")
	return account(t, acc, auth.Options{})
}

// TestAddAndRemoveUser: a user added at runtime signs in and gets mail; removed, they can no longer
// sign in, and Reset brings back the organisation Start made.
func TestAddAndRemoveUser(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{})
	if err := srv.AddUser(mailoauthtest.User{Address: "carol@contoso.test", DisplayName: "Carol"}); err != nil {
		t.Fatal(err)
	}
	if msgs, err := srv.Messages("carol@contoso.test"); err != nil || len(msgs) != 0 {
		t.Fatalf("carol's new mailbox: %v, %v", msgs, err)
	}
	carol := passwordAccount(t, srv, "carol@contoso.test")
	send(t, ctx, carol, "carol@contoso.test", "note to self")
	if got := subjects(t, srv, "carol@contoso.test", mailoauthtest.Inbox); len(got) != 1 || got[0] != "note to self" {
		t.Fatalf("carol's INBOX: %v", got)
	}
	if evs := srv.Events(mailoauthtest.EventFilter{User: "carol@contoso.test", Kinds: []mailoauthtest.EventKind{mailoauthtest.TokenIssued}}); len(evs) != 1 || evs[0].Grant != "password" {
		t.Fatalf("carol's token events:\n%s", kinds(evs))
	}

	for _, u := range []mailoauthtest.User{{Address: "carol@contoso.test"}, {Address: "dave@fabrikam.test"}, {Address: "Dave <dave@contoso.test>"}} {
		if err := srv.AddUser(u); err == nil || !strings.HasPrefix(err.Error(), "mailoauthtest: AddUser: ") {
			t.Errorf("AddUser(%q): %v, want an error", u.Address, err)
		}
	}

	if err := srv.RemoveUser("carol@contoso.test"); err != nil {
		t.Fatal(err)
	}
	if err := srv.RemoveUser("carol@contoso.test"); err == nil {
		t.Error("removing carol twice succeeded")
	}
	if err := trySend(ctx, carol, "bob@contoso.test"); err == nil {
		t.Error("a removed user's access token still logs in to SMTP")
	}
	if err := trySend(ctx, account(t, srv.Account("daemon"), auth.Options{}), "carol@contoso.test"); err == nil || !strings.Contains(err.Error(), "RecipientNotFound") {
		t.Errorf("mail to a removed user: %v, want RecipientNotFound", err)
	}
	if _, err := passwordAccount(t, srv, "carol@contoso.test").Token(ctx, token.Exchange); err == nil {
		t.Fatal("a removed user got a token")
	}
	// Exchange refused the access token carol still held (her client then asked for a new one, in
	// vain), and the identity platform no longer knows her.
	if evs := srv.Events(mailoauthtest.EventFilter{User: "carol@contoso.test", Kinds: []mailoauthtest.EventKind{mailoauthtest.AuthRefused}}); len(evs) == 0 || evs[0].Protocol != "smtp" {
		t.Errorf("carol's refused SMTP login:\n%s", kinds(evs))
	}
	if evs := srv.Events(mailoauthtest.EventFilter{User: "carol@contoso.test", Kinds: []mailoauthtest.EventKind{mailoauthtest.TokenRefused}}); len(evs) == 0 || evs[len(evs)-1].Code != "AADSTS50034" {
		t.Fatalf("carol's refused token:\n%s", kinds(evs))
	}

	if err := srv.AddUser(mailoauthtest.User{Address: "dave@contoso.test"}); err != nil {
		t.Fatal(err)
	}
	srv.Reset()
	if _, err := passwordAccount(t, srv, "dave@contoso.test").Token(ctx, token.Exchange); err == nil {
		t.Fatal("a user added before Reset still signs in")
	}
	if _, err := passwordAccount(t, srv, "bob@contoso.test").Token(ctx, token.Exchange); err != nil {
		t.Fatalf("bob after Reset: %v", err)
	}
}

// TestFaults: a fault added at runtime makes the next SMTP connection fail with the chosen reply and
// the next token request with the chosen status; ClearFaults ends them; nonsense is refused.
func TestFaults(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{})
	if err := srv.AddFault(mailoauthtest.Fault{Endpoint: "token", Status: 503}); err != nil {
		t.Fatal(err)
	}
	daemon := account(t, srv.Account("daemon-bob"), auth.Options{})
	if _, err := daemon.Token(ctx, token.Exchange); err == nil || !strings.Contains(err.Error(), "AADSTS90033") {
		t.Fatalf("a token with the identity platform failing: %v, want its 503 (AADSTS90033)", err)
	}
	srv.ClearFaults()
	if _, err := daemon.Token(ctx, token.Exchange); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}

	if err := srv.AddFault(mailoauthtest.Fault{Endpoint: "smtp", Reply: "421 4.3.2 Service not available", Times: 1}); err != nil {
		t.Fatal(err)
	}
	if err := trySend(ctx, daemon, "bob@contoso.test"); err == nil || !strings.Contains(err.Error(), "4.3.2") {
		t.Fatalf("SMTP with a 421 fault: %v", err)
	}
	if err := trySend(ctx, daemon, "bob@contoso.test"); err != nil {
		t.Fatalf("SMTP after the fault's one time: %v", err)
	}

	for _, f := range []mailoauthtest.Fault{
		{Endpoint: "tokens", Status: 503},
		{Endpoint: "smtp", Status: 503},
		{Endpoint: "graph", Reply: "NO"},
		{Endpoint: "token"},
		{Endpoint: "token", Status: 200},
		{Endpoint: "imap", Drop: true, Times: -1},
	} {
		if err := srv.AddFault(f); err == nil || !strings.HasPrefix(err.Error(), "mailoauthtest: AddFault: ") {
			t.Errorf("AddFault(%+v): %v, want an error", f, err)
		}
	}
}

// trySend submits one message to over SMTP as a, reporting what failed.
func trySend(ctx context.Context, a token.Account, to string) error {
	c, err := smtpc.Dial(ctx, smtpc.ForAccount(a))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(a.Mailbox(), []string{to}, strings.NewReader("Subject: x\r\n\r\n.\r\n")); err != nil {
		return err
	}
	return c.Quit()
}
