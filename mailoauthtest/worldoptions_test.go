package mailoauthtest_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/mailoauthtest"
	"github.com/mailoauth/mailoauth/store"
	"github.com/mailoauth/mailoauth/token"
)

// SignIn with password "" signs the user in with the password the World gave them; a user the
// World does not have is refused.
func TestSignInWorldPassword(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{World: &mailoauthtest.World{
		Users: []mailoauthtest.User{{Address: "bob@contoso.test", Password: "b0b"}},
		Apps:  []mailoauthtest.App{{Name: "web", Flow: config.FlowAuthCodeWeb}},
	}})
	a := account(t, srv.Account("web"), auth.Options{})
	authURL, verifier, err := a.AuthCodeURL(ctx, "st4te", auth.AuthCodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SignIn(ctx, authURL, "nobody@contoso.test", ""); err == nil {
		t.Fatal("a user the World does not have was signed in")
	}
	back, err := srv.SignIn(ctx, authURL, "bob@contoso.test", "")
	if err != nil {
		t.Fatal(err)
	}
	in, err := a.ExchangeCode(ctx, back.Query().Get("code"), verifier, auth.AuthCodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in.User.Username != "bob@contoso.test" {
		t.Fatalf("signed in %q, want bob", in.User.Username)
	}
}

// A World's TokenLifetime is the access tokens' lifetime: a token shorter-lived than auth's refresh
// margin is refreshed silently, with the refresh token, by the next process over the same store,
// and the new token opens the mailbox. With the default hour that process serves the stored one.
func TestTokenLifetime(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	for _, c := range []struct {
		lifetime  time.Duration
		refreshed bool
	}{{time.Minute, true}, {0, false}} {
		srv := mailoauthtest.NewServer(t, mailoauthtest.Options{AutoApprove: "carol@fabrikam.test", World: &mailoauthtest.World{
			Users:         []mailoauthtest.User{{Address: "carol@fabrikam.test"}},
			Apps:          []mailoauthtest.App{{Name: "cli", Flow: config.FlowDevice}},
			TokenLifetime: c.lifetime,
		}})
		st := store.NewMemory()
		in, err := account(t, srv.Account("cli"), auth.Options{Store: st}).Login(ctx, auth.LoginOptions{DeviceCode: func(auth.DeviceCode) {}})
		if err != nil {
			t.Fatal(err)
		}
		want := c.lifetime
		if want == 0 {
			want = time.Hour
		}
		if left := time.Until(in.Token.ExpiresOn); left > want || left < want-time.Minute/2 {
			t.Fatalf("lifetime %v: the token expires in %v", c.lifetime, left)
		}
		next := account(t, srv.Account("cli"), auth.Options{Store: st}) // another process
		tok, err := next.Token(ctx, token.Exchange)
		if err != nil {
			t.Fatal(err)
		}
		if refreshed := tok.AccessToken != in.Token.AccessToken; refreshed != c.refreshed {
			t.Fatalf("lifetime %v: refreshed %v, want %v", c.lifetime, refreshed, c.refreshed)
		}
		if got := inboxSubjects(t, ctx, next); len(got) != 0 {
			t.Fatalf("carol's INBOX: %q", got)
		}
	}
	_, err := mailoauthtest.Start(ctx, mailoauthtest.Options{World: &mailoauthtest.World{
		Users: []mailoauthtest.User{{Address: "carol@fabrikam.test"}}, TokenLifetime: 1500 * time.Millisecond}})
	if err == nil || !strings.Contains(err.Error(), "World.TokenLifetime") {
		t.Fatalf("a lifetime of 1.5s: %v", err)
	}
}

// A scenario's problems are config's public errors, which a caller can name with errors.As: every
// problem of a text with its line and key, a file that cannot be read as one error.
func TestScenarioErrorsAreConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := mailoauthtest.Start(context.Background(), mailoauthtest.Options{Scenario: "[tenants.x]\ndomains = [\"x.test\"]\n\n[apps.y]\ntenant = \"nowhere\"\n"})
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("an invalid scenario: %T %v, want config.Errors", err, err)
	}
	for _, e := range errs {
		if e.File != "Options.Scenario" || e.Line == 0 {
			t.Errorf("problem %q at %s:%d, want a line of Options.Scenario", e.Msg, e.File, e.Line)
		}
	}
	_, err = mailoauthtest.Start(context.Background(), mailoauthtest.Options{ScenarioFile: filepath.Join(t.TempDir(), "missing.toml")})
	var one *config.Error
	if !errors.As(err, &one) || !strings.Contains(one.Msg, "missing.toml") {
		t.Fatalf("a missing scenario file: %T %v, want a *config.Error naming it", err, err)
	}
}
