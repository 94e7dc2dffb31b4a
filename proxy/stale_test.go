package proxy_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/storetest"
	"github.com/mailoauth/mailoauth/store"
)

// An identity-platform outage while the account's token is inside its refresh margin does not start
// refusing logins early: the cached token, still valid for minutes, opens the session, and the
// metrics count it as served stale so that an operator sees the outage before tokens really expire.
func TestOutageInsideMarginStillLogsIn(t *testing.T) {
	w := world.Default()
	// The first token request (the daemon's token) is answered; every later one fails.
	w.Faults = []world.Fault{{Endpoint: "token", After: 1, Status: 503}}
	var shift atomic.Int64
	st := store.NewMemory()
	l := newLab(t, labOptions{world: w, auth: auth.Options{Store: st, Now: func() time.Time {
		return time.Now().Add(time.Duration(shift.Load()))
	}}})
	c := l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", aliceUser, alicePassword)

	a, err := l.mgr.Account("daemon")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.TokenSource(token.Exchange).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The token ages into its margin: 4 minutes left, in the store (MSAL's view) and on the accounts'
	// clock (auth's view of the token it holds in memory).
	storetest.AgeAccessTokens(t, st, "account/daemon", time.Now().Add(4*time.Minute))
	shift.Store(int64(time.Until(tok.ExpiresOn) - 4*time.Minute))
	before := l.emu.Identity.Requests("token")

	c = l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", aliceUser, alicePassword)
	c.check(c.cmd("b SELECT INBOX", "b "), "b OK")
	if l.emu.Identity.Requests("token") == before {
		t.Fatal("no refresh was tried for a token inside its margin")
	}
	if n := l.srv.Metrics.Value(`mailoauth_proxy_token_fetches_total{outcome="stale"}`); n != 1 {
		t.Fatalf("token fetches served stale = %d, want 1", n)
	}
}
