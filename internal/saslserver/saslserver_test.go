package saslserver_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/saslserver"
	"github.com/mailoauth/mailoauth/sasl"
)

const tok = "eyJhbGciOiJSUzI1NiJ9.eyJ1cG4iOiJhbGljZSJ9.c2ln"

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestExchangeStyleRefusalHasNoChallenge(t *testing.T) {
	s := saslserver.NewXOAuth2Server(func(saslserver.Credentials) error { return saslserver.ErrAuthFailed }, saslserver.ServerOptions{})
	ch, done, err := s.Next(must(sasl.EncodeXOAuth2("alice", tok)))
	if !done || !errors.Is(err, saslserver.ErrAuthFailed) || ch != nil {
		t.Fatalf("got %q %v %v; Exchange answers NO at once", ch, done, err)
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
		_, err1 := saslserver.ParseXOAuth2([]byte(msg))
		_, err2 := saslserver.ParseOAuthBearer([]byte(msg))
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
	f.Add(must(sasl.EncodeXOAuth2("alice@contoso.test", tok)))
	f.Add([]byte("user=\x01auth=Bearer \x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := saslserver.ParseXOAuth2(b)
		if err == nil && (c.Username == "" || c.Token == "") {
			t.Fatal("accepted without user or token")
		}
		if err != nil {
			return
		}
		// What parses re-encodes to the same user and token, unless the encoder refuses it (a user
		// name with a control character, a token with a space: what it must not build).
		if msg, err := sasl.EncodeXOAuth2(c.Username, c.Token); err == nil {
			if again, err := saslserver.ParseXOAuth2(msg); err != nil || again.Username != c.Username || again.Token != c.Token {
				t.Fatalf("re-encoding: %+v %v", again, err)
			}
		} else if !errors.Is(err, sasl.ErrInvalid) {
			t.Fatalf("re-encoding failed with %v", err)
		}
	})
}

func FuzzParseOAuthBearer(f *testing.F) {
	f.Add(must(sasl.EncodeOAuthBearer("alice@contoso.test", tok, "outlook.office365.com", 993)))
	f.Add([]byte("n,,\x01auth=Bearer x\x01\x01"))
	f.Add([]byte("y,a=x=2Cy,\x01port=99999\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := saslserver.ParseOAuthBearer(b)
		if err == nil && c.Token == "" {
			t.Fatal("accepted without a token")
		}
	})
}
