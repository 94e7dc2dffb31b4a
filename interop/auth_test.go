//go:build unix

package interop

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosasl "github.com/emersion/go-sasl"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/sasl"
)

// authCase is one credential presented to every server, with both mechanisms.
type authCase struct {
	name   string
	user   string
	token  func(*lab) string
	accept bool
	// logged is what Dovecot's auth log says for this refusal (checked once for the whole table).
	logged string
}

var authCases = []authCase{
	{name: "delegated", user: world.Alice, token: func(l *lab) string { return l.tok.good }, accept: true},
	{name: "app-only", user: world.Alice, token: func(l *lab) string { return l.tok.app }, accept: true},
	{name: "app-only-other-granted-mailbox", user: world.Bob, token: func(l *lab) string { return l.tok.app }, accept: true},
	{name: "expired", user: world.Alice, token: func(l *lab) string { return l.tok.expired }, logged: "Token has expired"},
	{name: "forged", user: world.Alice, token: func(l *lab) string { return l.tok.forged }, logged: "Bad signature"},
	{name: "wrong-user", user: world.Bob, token: func(l *lab) string { return l.tok.good },
		logged: "Username '" + world.Bob + "' did not match '" + world.Alice + "'"},
	{name: "graph-audience", user: world.Alice, token: func(l *lab) string { return l.tok.graph }, logged: "client_id not found in aud field"},
	{name: "app-only-mailbox-not-granted", user: world.Support, token: func(l *lab) string { return l.tok.app }},
}

// TestAuthentication presents every case over every transport with XOAUTH2 and OAUTHBEARER, through
// mailoauth's own SASL clients: good tokens log in and can use the session; bad ones get the
// protocol's plain refusal (NO [AUTHENTICATIONFAILED], -ERR [AUTH], 535) after the server's error
// challenge, which the client keeps (ServerError).
func TestAuthentication(t *testing.T) {
	l := need(t, false)
	t.Run("cases", func(t *testing.T) {
		for _, tr := range transports {
			for _, mech := range []string{sasl.XOAuth2, sasl.OAuthBearer} {
				for _, tc := range authCases {
					t.Run(tr.name+"/"+mech+"/"+tc.name, func(t *testing.T) {
						t.Parallel()
						if tr.postfix {
							need(t, true)
						}
						checkAuth(t, l, tr, mech, tc)
					})
				}
			}
		}
	})
	if t.Failed() {
		return
	}
	// The refusals were refused for the intended reason (Dovecot logs the first check that failed).
	deadline := time.Now().Add(3 * time.Second)
	for _, tc := range authCases {
		if tc.logged == "" {
			continue
		}
		for !strings.Contains(l.dovecotLog(), tc.logged) {
			if time.Now().After(deadline) {
				t.Errorf("%s: Dovecot's log never says %q", tc.name, tc.logged)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func checkAuth(t *testing.T, l *lab, tr transport, mech string, tc authCase) {
	t.Helper()
	token := tc.token(l)
	r := tr.login(l, mech, tc.user, token)
	if tc.accept {
		if r.err != nil {
			t.Fatalf("refused a good token: %v (server error challenge: %v)", r.err, r.challenge)
		}
		if r.challenge != nil {
			t.Errorf("accepted, yet an error challenge was kept: %v", r.challenge)
		}
		if err := r.use(tc.user); err != nil {
			t.Fatalf("after login: %v", err)
		}
		return
	}
	if r.err == nil {
		r.use(tc.user)
		t.Fatalf("accepted a %s token for %s", tc.name, tc.user)
	}
	if err := tr.refusal(r.err); err != nil {
		t.Error(err)
	}
	if r.challenge == nil {
		t.Fatalf("the client kept no error challenge (refusal: %v)", r.err)
	}
	want := "invalid_token"
	if mech == sasl.XOAuth2 {
		want = "401" // Dovecot: {"status":"401","schemes":"bearer","scope":"mail"}
	}
	if r.challenge.Status != want {
		t.Errorf("error challenge status %q, want %q (%+v)", r.challenge.Status, want, r.challenge)
	}
	if strings.Contains(r.err.Error(), token) {
		t.Errorf("the error quotes the token")
	}
}

// emptyAnswer is mailoauth's client with the answer to an error challenge replaced by an empty
// response: what go-imap v2 sends with a client that returns nothing (it writes "=").
type emptyAnswer struct{ *sasl.Client }

func (e emptyAnswer) Next(challenge []byte) ([]byte, error) {
	if _, err := e.Client.Next(challenge); err != nil {
		return nil, err
	}
	return []byte{}, nil
}

// TestErrorChallengeAnswer proves why mailoauth answers an error challenge with %x01: Dovecot takes
// go-imap v2's empty response ("=") for bad base64 and answers BAD, hiding the refusal; with %x01 the
// same refusal is a clean NO [AUTHENTICATIONFAILED].
func TestErrorChallengeAnswer(t *testing.T) {
	l := need(t, false)
	for _, mech := range []string{sasl.XOAuth2, sasl.OAuthBearer} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			try := func(c gosasl.Client) *imap.Error {
				ic, err := imapclient.DialTLS(addr(l.ports.IMAPS), l.imapOptions())
				if err != nil {
					t.Fatal(err)
				}
				defer ic.Close()
				err = ic.Authenticate(c)
				var ie *imap.Error
				if !errors.As(err, &ie) {
					t.Fatalf("AUTHENTICATE: %v, want an IMAP status response", err)
				}
				return ie
			}
			sc := newSASL(mech, world.Alice, l.tok.forged, l.ports.IMAPS)
			own := try(sc)
			if own.Type != imap.StatusResponseTypeNo || own.Code != imap.ResponseCodeAuthenticationFailed {
				t.Errorf("mailoauth's client: %v, want NO [AUTHENTICATIONFAILED]", own)
			}
			if sc.ServerError() == nil {
				t.Errorf("mailoauth's client kept no error challenge")
			}
			empty := try(emptyAnswer{newSASL(mech, world.Alice, l.tok.forged, l.ports.IMAPS)})
			if empty.Type != imap.StatusResponseTypeBad || !strings.Contains(empty.Text, "base64") {
				t.Errorf("empty answer: %v; want Dovecot's BAD about base64 (the problem %%x01 avoids)", empty)
			}
			t.Logf("empty answer: %s %s; mailoauth's %%x01: %s [%s] %s", empty.Type, empty.Text, own.Type, own.Code, own.Text)
		})
	}
}
