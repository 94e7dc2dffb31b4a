package sasl_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/saslserver"
	"github.com/mailoauth/mailoauth/sasl"
)

// must is for messages a test builds from well-formed input.
func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestEncodersRefuseAmbiguousInput: a library user cannot build a message in which one field carries
// another (issue 13: "x^Auser=alice@contoso.test" as a user name named alice to the server). Start
// refuses, and so does Next for a two-step client; the error never quotes the token.
func TestEncodersRefuseAmbiguousInput(t *testing.T) {
	long := strings.Repeat("A", 70<<10)
	for _, tc := range []struct {
		name        string
		mech        string
		user, token string
		host        string
		port        int
		want        string
	}{
		{"no user", sasl.XOAuth2, "", tok, "", 0, "needs a user name"},
		{"^A in user", sasl.XOAuth2, "x\x01user=alice@contoso.test\x01z=@contoso.onmicrosoft.com", tok, "", 0, `control character ('\x01')`},
		{"CRLF in user", sasl.XOAuth2, "bob@contoso.test\r\nA2 SELECT INBOX", tok, "", 0, `control character ('\r')`},
		{"NUL in user", sasl.XOAuth2, "bob\x00", tok, "", 0, `control character ('\x00')`},
		{"DEL in user", sasl.XOAuth2, "bob\x7f", tok, "", 0, `control character ('\x7f')`},
		{"user not UTF-8", sasl.XOAuth2, "b\xffob@contoso.test", tok, "", 0, "not valid UTF-8"},
		{"no token", sasl.XOAuth2, "bob", "", "", 0, "token is empty"},
		{"^A in token", sasl.XOAuth2, "bob", tok + "\x01user=alice", "", 0, "not printable ASCII"},
		{"space in token", sasl.XOAuth2, "bob", tok + " x", "", 0, "not printable ASCII"},
		{"LF in token", sasl.XOAuth2, "bob", tok + "\n", "", 0, "not printable ASCII"},
		{"non-ASCII token", sasl.XOAuth2, "bob", tok + "é", "", 0, "not printable ASCII"},
		{"too long", sasl.XOAuth2, "bob", long, "", 0, "longer than 64 KiB"},
		{"^A in authzid", sasl.OAuthBearer, "x\x01auth=Bearer forged", tok, "", 0, `control character ('\x01')`},
		{"authzid not UTF-8", sasl.OAuthBearer, "\xc3", tok, "", 0, "not valid UTF-8"},
		{"bearer no token", sasl.OAuthBearer, "bob", "", "", 0, "token is empty"},
		{"^A in bearer token", sasl.OAuthBearer, "", tok + "\x01", "", 0, "not printable ASCII"},
		{"^A in host", sasl.OAuthBearer, "", tok, "imap.example\x01auth=Bearer forged", 993, "host must be printable ASCII"},
		{"space in host", sasl.OAuthBearer, "", tok, "imap example", 993, "host must be printable ASCII"},
		{"negative port", sasl.OAuthBearer, "", tok, "imap.example", -1, "port must be between"},
		{"port too high", sasl.OAuthBearer, "", tok, "imap.example", 65536, "port must be between"},
		{"bearer too long", sasl.OAuthBearer, "", long, "", 0, "longer than 64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := func() *sasl.Client {
				if tc.mech == sasl.XOAuth2 {
					return sasl.NewXOAuth2Client(tc.user, tc.token)
				}
				return sasl.NewOAuthBearerClient(tc.user, tc.token, tc.host, tc.port)
			}
			check := func(how string, msg []byte, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s built %q", how, msg)
				}
				if !errors.Is(err, sasl.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: %v, want ErrInvalid saying %q", how, err, tc.want)
				}
				if strings.Contains(err.Error(), tok) {
					t.Errorf("%s: the error quotes the token", how)
				}
			}
			_, ir, err := client().Start()
			check("Start", ir, err)
			two := client().TwoStep()
			if _, ir, err := two.Start(); ir != nil || err != nil {
				t.Fatalf("two-step Start = %q %v: nothing is encoded before the server asks", ir, err)
			}
			resp, err := two.Next([]byte{})
			check("two-step Next", resp, err)
			if tc.mech == sasl.XOAuth2 {
				msg, err := sasl.EncodeXOAuth2(tc.user, tc.token)
				check("EncodeXOAuth2", msg, err)
			} else {
				msg, err := sasl.EncodeOAuthBearer(tc.user, tc.token, tc.host, tc.port)
				check("EncodeOAuthBearer", msg, err)
			}
		})
	}
}

// TestEncodersTakeWhatServersDo: what real programs send still encodes, including what the proxy's
// catch-all passes on (quoted local parts, non-ASCII letters) and an authzid with "," and "=".
func TestEncodersTakeWhatServersDo(t *testing.T) {
	for _, user := range []string{"alice@contoso.test", `"bob smith"@contoso.test`, "josé@contoso.test", "o'neil+x=y@contoso.test"} {
		msg, err := sasl.EncodeXOAuth2(user, tok)
		if err != nil {
			t.Fatalf("EncodeXOAuth2(%q): %v", user, err)
		}
		if c, err := saslserver.ParseXOAuth2(msg); err != nil || c.Username != user || c.Token != tok {
			t.Fatalf("round trip of %q: %+v %v", user, c, err)
		}
		msg, err = sasl.EncodeOAuthBearer(user, tok, "[::1]", 993)
		if err != nil {
			t.Fatalf("EncodeOAuthBearer(%q): %v", user, err)
		}
		if c, err := saslserver.ParseOAuthBearer(msg); err != nil || c.Username != user || c.Token != tok || c.Host != "[::1]" || c.Port != 993 {
			t.Fatalf("round trip of %q: %+v %v", user, c, err)
		}
	}
}

// TestGS2EscapesEveryCommaAndEquals: RFC 5801's saslname: "," is "=2C" and "=" is "=3D" — including
// an "=" that starts what looks like an escape already, which must not be read back as one.
func TestGS2EscapesEveryCommaAndEquals(t *testing.T) {
	for user, header := range map[string]string{
		"a,b=c@x":    "n,a=a=2Cb=3Dc@x,",
		"=2C":        "n,a==3D2C,",
		"x=3D,,y":    "n,a=x=3D3D=2C=2Cy,",
		",":          "n,a==2C,",
		"plain@x.ex": "n,a=plain@x.ex,",
		"":           "n,,",
	} {
		msg := must(sasl.EncodeOAuthBearer(user, tok, "", 0))
		gs2, _, _ := bytes.Cut(msg, []byte{0x01})
		if string(gs2) != header {
			t.Errorf("authzid %q: gs2 header %q, want %q", user, gs2, header)
		}
		if c, err := saslserver.ParseOAuthBearer(msg); err != nil || c.Username != user {
			t.Errorf("authzid %q read back as %q (%v)", user, c.Username, err)
		}
	}
}

// FuzzEncodeXOAuth2: whatever user name and token the encoder takes, the message names exactly that
// user and carries exactly that token, in exactly two fields: nothing smuggled.
func FuzzEncodeXOAuth2(f *testing.F) {
	f.Add("alice@contoso.test", tok)
	f.Add("x\x01user=alice@contoso.test\x01z=@contoso.onmicrosoft.com", tok)
	f.Add("bob", tok+"\x01user=alice")
	f.Add("a=b", "c=d")
	f.Fuzz(func(t *testing.T, user, token string) {
		msg, err := sasl.EncodeXOAuth2(user, token)
		if err != nil {
			if !errors.Is(err, sasl.ErrInvalid) {
				t.Fatalf("not ErrInvalid: %v", err)
			}
			return
		}
		assertXOAuth2(t, msg, user, token)
	})
}

// assertXOAuth2 checks that msg is user=<user>^Aauth=Bearer <token>^A^A and parses back to them.
func assertXOAuth2(t *testing.T, msg []byte, user, token string) {
	t.Helper()
	if fields := bytes.Split(msg, []byte{0x01}); len(fields) != 4 {
		t.Fatalf("%q has %d fields, want user and auth", msg, len(fields)-2)
	}
	c, err := saslserver.ParseXOAuth2(msg)
	if err != nil || c.Username != user || c.Token != token {
		t.Fatalf("%q parsed as %q, %q (%v); encoded from %q, %q", msg, c.Username, c.Token, err, user, token)
	}
}

// FuzzEncodeOAuthBearer: the same for OAUTHBEARER's authzid, host, port and token.
func FuzzEncodeOAuthBearer(f *testing.F) {
	f.Add("alice@contoso.test", tok, "outlook.office365.com", 993)
	f.Add("a,b=c", tok, "h\x01auth=Bearer x", 0)
	f.Add("=2C", "t", "", -5)
	f.Fuzz(func(t *testing.T, user, token, host string, port int) {
		msg, err := sasl.EncodeOAuthBearer(user, token, host, port)
		if err != nil {
			if !errors.Is(err, sasl.ErrInvalid) {
				t.Fatalf("not ErrInvalid: %v", err)
			}
			return
		}
		c, err := saslserver.ParseOAuthBearer(msg)
		if err != nil || c.Username != user || c.Token != token || c.Host != host || c.Port != port {
			t.Fatalf("%q parsed as %+v (%v); encoded from %q %q %q %d", msg, c, err, user, token, host, port)
		}
	})
}
