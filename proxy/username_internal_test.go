package proxy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/saslserver"
	"github.com/mailoauth/mailoauth/sasl"
)

func TestBadUserName(t *testing.T) {
	for _, tc := range []struct{ user, want string }{
		{"alice@contoso.test", ""},
		{"scanner", ""},
		{"josé@contoso.test", ""},
		{`alice@contoso.test\support`, ""}, // refused later, as unknown, with the doctor's explanation
		{strings.Repeat("a", 256), ""},
		{strings.Repeat("a", 257), "longer than 256 bytes"},
		{"x\x01user=alice@contoso.test\x01z=@contoso.onmicrosoft.com", `control character ('\x01')`},
		{"alice\r\n@contoso.test", `control character ('\r')`},
		{"alice\n", `control character ('\n')`},
		{"al\x00ice", `control character ('\x00')`},
		{"alice\x7f", `control character ('\x7f')`},
		{"alice\t", `control character ('\t')`},
		{"al\xffice", "not valid UTF-8"},
		{"\xc3", "not valid UTF-8"},
	} {
		got := badUserName(tc.user)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("badUserName(%q) = %q, want %q", tc.user, got, tc.want)
		}
	}
}

func TestQuotedUserNameEscapesAndBounds(t *testing.T) {
	if got := quotedUserName("x\x01y\r\n"); got != `"x\x01y\r\n"` {
		t.Errorf("got %s", got)
	}
	long := quotedUserName(strings.Repeat("\x01", 1000))
	if strings.ContainsRune(long, 1) || len(long) > 600 || !strings.HasSuffix(long, "... (1000 bytes)") {
		t.Errorf("a long name is logged as %d bytes: %.80s", len(long), long)
	}
}

// TestCatchAllMatchesOnlyWholeAddresses: [proxy.domains] matches a name that is one address of the
// domain, and nothing that only ends in "@domain".
func TestCatchAllMatchesOnlyWholeAddresses(t *testing.T) {
	set := &settings{
		users: map[string]*config.ProxyUser{
			"scanner":            {Account: "printer", PasswordHash: "h-scanner"},
			"Alice@Contoso.test": {Account: "alice", PasswordHash: "h-alice"},
		},
		domains: map[string]*config.ProxyDomain{"contoso.test": {Account: "daemon", PasswordHash: "h-domain"}},
	}
	for _, tc := range []struct {
		user    string
		account string // "" = no match
		mailbox string
	}{
		// [proxy.users], exactly and ignoring case: the account's own mailbox.
		{"scanner", "printer", ""},
		{"SCANNER", "printer", ""},
		{"alice@contoso.test", "alice", ""},
		// Addresses of the catch-all's domain: the name is the mailbox.
		{"bob@contoso.test", "daemon", "bob@contoso.test"},
		{"Bob@CONTOSO.TEST", "daemon", "Bob@CONTOSO.TEST"},
		{"first.last@contoso.test", "daemon", "first.last@contoso.test"},
		{"o'neil+tag=x@contoso.test", "daemon", "o'neil+tag=x@contoso.test"},
		{"josé@contoso.test", "daemon", "josé@contoso.test"},
		{`"bob smith"@contoso.test`, "daemon", `"bob smith"@contoso.test`},
		{`"a@b"@contoso.test`, "daemon", `"a@b"@contoso.test`},
		{`"a\"b"@contoso.test`, "daemon", `"a\"b"@contoso.test`},
		{strings.Repeat("b", 64) + "@contoso.test", "daemon", strings.Repeat("b", 64) + "@contoso.test"},
		// Not one address of the domain.
		{"x\x01user=alice@contoso.test\x01z=@contoso.test", "", ""},
		{"a@b@contoso.test", "", ""},
		{"alice@fabrikam.test/support@contoso.test", "", ""},
		{`alice@contoso.test\support`, "", ""},
		{"@contoso.test", "", ""},
		{"bob@", "", ""},
		{"bob@contoso.test.", "", ""},
		{"bob@fabrikam.test", "", ""},
		{"bob@contoso.testx", "", ""},
		{".bob@contoso.test", "", ""},
		{"bob.@contoso.test", "", ""},
		{"bo..b@contoso.test", "", ""},
		{"bob smith@contoso.test", "", ""},
		{"bob,x@contoso.test", "", ""},
		{"bob(x)@contoso.test", "", ""},
		{`""@contoso.test`, "", ""},
		{`"bob@contoso.test`, "", ""},
		{`"bob"x@contoso.test`, "", ""},
		{"\"bo\x01b\"@contoso.test", "", ""},
		{`"bo\`, "", ""},
		{"bo\u00a0b@contoso.test", "", ""}, // a no-break space is no letter
		{"bo\u202eb@contoso.test", "", ""}, // nor is a bidirectional override
		{strings.Repeat("b", 65) + "@contoso.test", "", ""},
	} {
		account, hash, mailbox, ok := set.lookup(tc.user)
		if ok != (tc.account != "") || account != tc.account || mailbox != tc.mailbox {
			t.Errorf("lookup(%q) = %q %q %v, want %q %q", tc.user, account, mailbox, ok, tc.account, tc.mailbox)
		}
		if ok && hash == "" {
			t.Errorf("lookup(%q): no password hash", tc.user)
		}
	}
}

// FuzzUserNameXOAuth2: whatever name the proxy takes, and whatever mailbox its catch-all makes of it,
// XOAUTH2 carries exactly that name and that token upstream: no field smuggled.
func FuzzUserNameXOAuth2(f *testing.F) {
	const tok = "eyJhbGciOiJSUzI1NiJ9.eyJ1cG4iOiJhbGljZSJ9.c2ln"
	f.Add("x\x01user=alice@contoso.test\x01z=@contoso.test", tok)
	f.Add("bob@contoso.test", tok)
	f.Add(`"a@b\"c"@CONTOSO.test`, tok)
	f.Add(`bob@contoso.test\support`, "t")
	f.Add("jos\xc3\xa9@contoso.test", tok)
	set := &settings{domains: map[string]*config.ProxyDomain{"contoso.test": {Account: "daemon", PasswordHash: "h"}}}
	f.Fuzz(func(t *testing.T, user, token string) {
		if badUserName(user) != "" || user == "" {
			return
		}
		roundTrip := func(name string) {
			msg, err := sasl.EncodeXOAuth2(name, tok)
			if err != nil {
				t.Fatalf("the proxy takes %q but XOAUTH2 cannot carry it: %v", name, err)
			}
			checkXOAuth2(t, msg, name, tok)
			if msg, err := sasl.EncodeXOAuth2(name, token); err == nil {
				checkXOAuth2(t, msg, name, token)
			}
		}
		roundTrip(user)
		if _, _, mailbox, ok := set.lookup(user); ok {
			if mailbox != user {
				t.Fatalf("the catch-all made %q of %q", mailbox, user)
			}
			roundTrip(mailbox)
		}
	})
}

// checkXOAuth2 asserts that msg has exactly the user and auth fields, and parses back to user and token.
func checkXOAuth2(t *testing.T, msg []byte, user, token string) {
	t.Helper()
	if n := bytes.Count(msg, []byte{0x01}); n != 3 {
		t.Fatalf("%q has %d separators, want 3 (user, auth, end)", msg, n)
	}
	c, err := saslserver.ParseXOAuth2(msg)
	if err != nil || c.Username != user || c.Token != token {
		t.Fatalf("%q parsed as %q, %q (%v); sent %q", msg, c.Username, c.Token, err, user)
	}
}
