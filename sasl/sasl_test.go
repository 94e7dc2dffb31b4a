package sasl_test

import (
	"bytes"
	"testing"

	gosasl "github.com/emersion/go-sasl"
	"github.com/mailoauth/mailoauth/internal/saslserver"
	"github.com/mailoauth/mailoauth/sasl"
)

const tok = "eyJhbGciOiJSUzI1NiJ9.eyJ1cG4iOiJhbGljZSJ9.c2ln"

func TestXOAuth2WireFormat(t *testing.T) {
	mech, ir, err := sasl.NewXOAuth2Client("alice@contoso.test", tok).Start()
	// Microsoft's documented format: user=<u>^Aauth=Bearer <t>^A^A.
	want := "user=alice@contoso.test\x01auth=Bearer " + tok + "\x01\x01"
	if err != nil || mech != "XOAUTH2" || string(ir) != want {
		t.Fatalf("Start = %q %q %v", mech, ir, err)
	}
	c, err := saslserver.ParseXOAuth2(ir)
	if err != nil || c.Username != "alice@contoso.test" || c.Token != tok {
		t.Fatalf("parse %+v %v", c, err)
	}
}

func TestOAuthBearerAgainstGoSASL(t *testing.T) {
	// Our client, go-sasl's server.
	var got gosasl.OAuthBearerOptions
	srv := gosasl.NewOAuthBearerServer(func(o gosasl.OAuthBearerOptions) *gosasl.OAuthBearerError {
		got = o
		return nil
	})
	_, ir, _ := sasl.NewOAuthBearerClient("support@contoso.test", tok, "imap.example", 993).Start()
	if _, done, err := srv.Next(ir); err != nil || !done {
		t.Fatalf("go-sasl server: done %v err %v", done, err)
	}
	if got.Username != "support@contoso.test" || got.Token != tok || got.Host != "imap.example" || got.Port != 993 {
		t.Fatalf("go-sasl server parsed %+v", got)
	}
	// go-sasl's client, our server.
	var seen saslserver.Credentials
	ours := saslserver.NewOAuthBearerServer(func(c saslserver.Credentials) error { seen = c; return nil }, saslserver.ServerOptions{})
	_, ir, _ = gosasl.NewOAuthBearerClient(&gosasl.OAuthBearerOptions{Username: "support@contoso.test", Token: tok, Host: "h", Port: 587}).Start()
	if _, done, err := ours.Next(ir); err != nil || !done {
		t.Fatalf("our server: %v", err)
	}
	if seen.Username != "support@contoso.test" || seen.Token != tok || seen.Port != 587 {
		t.Fatalf("our server parsed %+v", seen)
	}
}

func TestErrorChallengeRoundTrip(t *testing.T) {
	refuse := func(saslserver.Credentials) error {
		return &sasl.ServerError{Status: "401", Schemes: "bearer", Scope: "mail"}
	}
	for _, mech := range []string{sasl.XOAuth2, sasl.OAuthBearer} {
		t.Run(mech, func(t *testing.T) {
			var c *sasl.Client
			var s gosasl.Server
			if mech == sasl.XOAuth2 {
				c, s = sasl.NewXOAuth2Client("alice", tok), saslserver.NewXOAuth2Server(refuse, saslserver.ServerOptions{ErrorChallenge: true})
			} else {
				c, s = sasl.NewOAuthBearerClient("alice", tok, "", 0), saslserver.NewOAuthBearerServer(refuse, saslserver.ServerOptions{ErrorChallenge: true})
			}
			_, ir, _ := c.Start()
			ch, done, err := s.Next(ir)
			if done || err != nil || !bytes.Contains(ch, []byte(`"status":"401"`)) {
				t.Fatalf("server's first answer: %q %v %v", ch, done, err)
			}
			resp, err := c.Next(ch)
			if err != nil || !bytes.Equal(resp, []byte{0x01}) {
				t.Fatalf("client answered %q %v; RFC 7628 wants %%x01 (and never an empty response)", resp, err)
			}
			if se := c.ServerError(); se == nil || se.Status != "401" || se.Scope != "mail" {
				t.Fatalf("client kept %+v", se)
			}
			if _, done, err = s.Next(resp); !done || err == nil {
				t.Fatal("exchange did not fail after the error challenge")
			}
		})
	}
}

func TestServerAsksForInitialResponse(t *testing.T) {
	s := saslserver.NewXOAuth2Server(func(saslserver.Credentials) error { return nil }, saslserver.ServerOptions{})
	ch, done, err := s.Next(nil)
	if done || err != nil || len(ch) != 0 {
		t.Fatalf("no initial response: %q %v %v", ch, done, err)
	}
	// A client that got the empty challenge sends its credentials then (POP3's two-step AUTH).
	c := sasl.NewXOAuth2Client("alice", tok)
	resp, _ := c.Next(ch)
	if _, done, err := s.Next(resp); !done || err != nil {
		t.Fatalf("two-step: %v %v", done, err)
	}
}

func TestAuthzidEscaping(t *testing.T) {
	ir := must(sasl.EncodeOAuthBearer("a,b=c@x", tok, "", 0))
	if !bytes.HasPrefix(ir, []byte("n,a=a=2Cb=3Dc@x,\x01")) {
		t.Fatalf("authzid not escaped per RFC 5801: %q", ir[:20])
	}
	c, err := saslserver.ParseOAuthBearer(ir)
	if err != nil || c.Username != "a,b=c@x" {
		t.Fatalf("round trip %+v %v", c, err)
	}
}

func TestTwoStepSendsNoInitialResponse(t *testing.T) {
	c := sasl.NewXOAuth2Client("alice", tok).TwoStep()
	mech, ir, err := c.Start()
	if mech != sasl.XOAuth2 || ir != nil || err != nil {
		t.Fatalf("Start = %q %q %v; two-step sends nothing on the command line", mech, ir, err)
	}
	s := saslserver.NewXOAuth2Server(func(saslserver.Credentials) error { return nil }, saslserver.ServerOptions{})
	ch, done, _ := s.Next(nil)
	resp, _ := c.Next(ch)
	if _, done, err = s.Next(resp); !done || err != nil {
		t.Fatalf("two-step exchange: %v %v", done, err)
	}
}
