package sasl

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	gosasl "github.com/emersion/go-sasl"
)

const tok = "eyJhbGciOiJSUzI1NiJ9.eyJ1cG4iOiJhbGljZSJ9.c2ln"

func TestXOAuth2WireFormat(t *testing.T) {
	mech, ir, err := NewXOAuth2Client("alice@contoso.test", tok).Start()
	// Microsoft's documented format: user=<u>^Aauth=Bearer <t>^A^A.
	want := "user=alice@contoso.test\x01auth=Bearer " + tok + "\x01\x01"
	if err != nil || mech != "XOAUTH2" || string(ir) != want {
		t.Fatalf("Start = %q %q %v", mech, ir, err)
	}
	c, err := ParseXOAuth2(ir)
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
	_, ir, _ := NewOAuthBearerClient("support@contoso.test", tok, "imap.example", 993).Start()
	if _, done, err := srv.Next(ir); err != nil || !done {
		t.Fatalf("go-sasl server: done %v err %v", done, err)
	}
	if got.Username != "support@contoso.test" || got.Token != tok || got.Host != "imap.example" || got.Port != 993 {
		t.Fatalf("go-sasl server parsed %+v", got)
	}
	// go-sasl's client, our server.
	var seen Credentials
	ours := NewOAuthBearerServer(func(c Credentials) error { seen = c; return nil }, ServerOptions{})
	_, ir, _ = gosasl.NewOAuthBearerClient(&gosasl.OAuthBearerOptions{Username: "support@contoso.test", Token: tok, Host: "h", Port: 587}).Start()
	if _, done, err := ours.Next(ir); err != nil || !done {
		t.Fatalf("our server: %v", err)
	}
	if seen.Username != "support@contoso.test" || seen.Token != tok || seen.Port != 587 {
		t.Fatalf("our server parsed %+v", seen)
	}
}

func TestErrorChallengeRoundTrip(t *testing.T) {
	refuse := func(Credentials) error { return &ServerError{Status: "401", Schemes: "bearer", Scope: "mail"} }
	for _, mech := range []string{XOAuth2, OAuthBearer} {
		t.Run(mech, func(t *testing.T) {
			var c *Client
			var s gosasl.Server
			if mech == XOAuth2 {
				c, s = NewXOAuth2Client("alice", tok), NewXOAuth2Server(refuse, ServerOptions{ErrorChallenge: true})
			} else {
				c, s = NewOAuthBearerClient("alice", tok, "", 0), NewOAuthBearerServer(refuse, ServerOptions{ErrorChallenge: true})
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

func TestExchangeStyleRefusalHasNoChallenge(t *testing.T) {
	s := NewXOAuth2Server(func(Credentials) error { return ErrAuthFailed }, ServerOptions{})
	ch, done, err := s.Next(must(EncodeXOAuth2("alice", tok)))
	if !done || !errors.Is(err, ErrAuthFailed) || ch != nil {
		t.Fatalf("got %q %v %v; Exchange answers NO at once", ch, done, err)
	}
}

func TestServerAsksForInitialResponse(t *testing.T) {
	s := NewXOAuth2Server(func(Credentials) error { return nil }, ServerOptions{})
	ch, done, err := s.Next(nil)
	if done || err != nil || len(ch) != 0 {
		t.Fatalf("no initial response: %q %v %v", ch, done, err)
	}
	// A client that got the empty challenge sends its credentials then (POP3's two-step AUTH).
	c := NewXOAuth2Client("alice", tok)
	resp, _ := c.Next(ch)
	if _, done, err := s.Next(resp); !done || err != nil {
		t.Fatalf("two-step: %v %v", done, err)
	}
}

func TestMalformedNeverQuotesTheToken(t *testing.T) {
	for _, msg := range []string{
		"user=alice\x01auth=Bearer " + tok + "\x01", // one ^A missing
		"user=alice\x01auth=Basic " + tok + "\x01\x01",
		"auth=Bearer " + tok + "\x01\x01",
		"n,a=alice\x01auth=Token " + tok + "\x01\x01",
		"p=x,a=alice,\x01auth=Bearer " + tok + "\x01\x01",
	} {
		_, err1 := ParseXOAuth2([]byte(msg))
		_, err2 := ParseOAuthBearer([]byte(msg))
		for _, err := range []error{err1, err2} {
			if err == nil {
				t.Errorf("%q accepted", msg)
			} else if strings.Contains(err.Error(), tok) {
				t.Errorf("error quotes the token: %v", err)
			}
		}
	}
}

func FuzzParseXOAuth2(f *testing.F) {
	f.Add(must(EncodeXOAuth2("alice@contoso.test", tok)))
	f.Add([]byte("user=\x01auth=Bearer \x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseXOAuth2(b)
		if err == nil && (c.Username == "" || c.Token == "") {
			t.Fatal("accepted without user or token")
		}
		if err != nil {
			return
		}
		// What parses re-encodes to the same user and token, unless the encoder refuses it (a user
		// name with a control character, a token with a space: what it must not build).
		if msg, err := EncodeXOAuth2(c.Username, c.Token); err == nil {
			if again, err := ParseXOAuth2(msg); err != nil || again.Username != c.Username || again.Token != c.Token {
				t.Fatalf("re-encoding: %+v %v", again, err)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("re-encoding failed with %v", err)
		}
	})
}

func FuzzParseOAuthBearer(f *testing.F) {
	f.Add(must(EncodeOAuthBearer("alice@contoso.test", tok, "outlook.office365.com", 993)))
	f.Add([]byte("n,,\x01auth=Bearer x\x01\x01"))
	f.Add([]byte("y,a=x=2Cy,\x01port=99999\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseOAuthBearer(b)
		if err == nil && c.Token == "" {
			t.Fatal("accepted without a token")
		}
	})
}

func TestAuthzidEscaping(t *testing.T) {
	ir := must(EncodeOAuthBearer("a,b=c@x", tok, "", 0))
	if !bytes.HasPrefix(ir, []byte("n,a=a=2Cb=3Dc@x,\x01")) {
		t.Fatalf("authzid not escaped per RFC 5801: %q", ir[:20])
	}
	c, err := ParseOAuthBearer(ir)
	if err != nil || c.Username != "a,b=c@x" {
		t.Fatalf("round trip %+v %v", c, err)
	}
}

func TestTwoStepSendsNoInitialResponse(t *testing.T) {
	c := NewXOAuth2Client("alice", tok).TwoStep()
	mech, ir, err := c.Start()
	if mech != XOAuth2 || ir != nil || err != nil {
		t.Fatalf("Start = %q %q %v; two-step sends nothing on the command line", mech, ir, err)
	}
	s := NewXOAuth2Server(func(Credentials) error { return nil }, ServerOptions{})
	ch, done, _ := s.Next(nil)
	resp, _ := c.Next(ch)
	if _, done, err = s.Next(resp); !done || err != nil {
		t.Fatalf("two-step exchange: %v %v", done, err)
	}
}
