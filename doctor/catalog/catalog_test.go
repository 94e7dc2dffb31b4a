package catalog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/mailerr"
)

func jwt(t testing.TB, claims map[string]any) string {
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln"
}

var subject = Subject{Account: "work", ClientID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", Tenant: "contoso.com", Email: "alice@contoso.com",
	Mailbox: "alice@contoso.com", Flow: "interactive", Authority: "https://login.microsoftonline.com", Cloud: globalCloud()}

func globalCloud() auth.Cloud {
	c, err := auth.LookupCloud("global")
	if err != nil {
		panic(err)
	}
	return c
}

// The findings that need no server: what the claims say, and the servers' words alone.
func TestRefusalsFromWordsAndClaims(t *testing.T) {
	now := time.Now()
	exchange := map[string]any{"aud": "https://outlook.office.com", "scp": "IMAP.AccessAsUser.All SMTP.Send", "upn": "alice@contoso.com",
		"tid": "7c4b8e1a-2f5d-4e3b-9a61-0d8f3c2b1a50", "iat": float64(now.Unix()), "exp": float64(now.Add(time.Hour).Unix())}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range exchange {
			m[a] = b
		}
		m[k] = v
		return m
	}
	for _, tc := range []struct {
		name, protocol, said string
		claims               map[string]any // nil: an opaque token
		code, fix            string
	}{
		{"expired token", "imap", "NO AUTHENTICATE failed.", with("exp", float64(now.Add(-time.Hour).Unix())), CodeTokenExpired, "mailoauth token work"},
		{"opaque token", "smtp", "535 5.7.3 Authentication unsuccessful", nil, CodeRefusedOpaque, "mailoauth login work"},
		{"basic auth", "smtp", "535 5.7.139 Authentication unsuccessful, basic authentication is disabled.", exchange, CodeBasicAuth, "mailoauth proxy"},
		{"LOGIN refused", "imap", "NO LOGIN failed.", exchange, CodeBasicAuth, "XOAUTH2"},
		{"send as", "smtp", "554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as x@contoso.com", exchange, CodeSendAs, "Add-RecipientPermission"},
		{"SMTP AUTH off for the mailbox", "smtp", "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.", exchange, CodeSMTPAuthOff, "Set-CASMailbox -Identity alice@contoso.com -SmtpClientAuthenticationDisabled $false"},
		{"Exchange token on Graph", "graph", "", exchange, CodeAudExchange, "https://graph.microsoft.com"},
		{"token that looks right", "imap", "NO AUTHENTICATE failed.", exchange, CodeRefused, "mailoauth login work"},
		{"app-only without role", "smtp", "535 5.7.3 Authentication unsuccessful", map[string]any{"aud": "https://outlook.office365.com", "roles": []any{"IMAP.AccessAsApp"}, "oid": "5b1c", "idtyp": "app"}, CodeRoleMissing, "SMTP.SendAsApp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *Claims
			if tc.claims != nil {
				var err error
				if c, err = ParseClaims(jwt(t, tc.claims)); err != nil {
					t.Fatal(err)
				}
			}
			var f Finding
			if tc.protocol == "graph" {
				p, _ := CheckClaims(subject, tc.protocol, c, "")
				f = *p
			} else {
				f = Refusal(subject, tc.protocol, tc.said, c, now)
			}
			if f.Code != tc.code || !strings.Contains(f.Fix, tc.fix) {
				t.Fatalf("%+v, want %s naming %q", f, tc.code, tc.fix)
			}
		})
	}
	// The tenant of the token against the tenant discovery named; a token that is not a JWT is a note.
	c, _ := ParseClaims(jwt(t, exchange))
	if f, _ := CheckClaims(subject, "imap", c, "00000000-1111-2222-3333-444444444444"); f == nil || f.Code != CodeTenantMismatch {
		t.Errorf("tid mismatch: %+v", f)
	}
	if f, notes := CheckClaims(subject, "imap", nil, ""); f != nil || len(notes) != 1 || notes[0].Code != CodeNotJWT {
		t.Errorf("opaque token: %+v %+v", f, notes)
	}
	if _, err := ParseClaims("EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA"); err != ErrNotJWT {
		t.Errorf("an opaque token: %v", err)
	}
}

func TestSharedMailboxSyntax(t *testing.T) {
	f, ok := SharedMailboxSyntax(`alice@contoso.com\support`)
	if !ok || f.Code != CodeSharedSyntax || !strings.Contains(f.Fix, `mailbox = "support@contoso.com"`) || !strings.Contains(f.Fix, "Add-MailboxPermission -Identity support@contoso.com -User alice@contoso.com") {
		t.Fatalf("%+v", f)
	}
	if _, ok := SharedMailboxSyntax("support@contoso.com"); ok {
		t.Error("a plain address is not the old syntax")
	}
}

func TestAADSTSAdvice(t *testing.T) {
	for n, fix := range map[int]string{700082: "mailoauth login work", 50173: "mailoauth login work", 7000218: "Allow public client flows",
		700025: "remove client_secret_file", 50011: "http://localhost", 1002012: "/.default", 700027: "Upload certificate"} {
		if f := AADSTS(subject, n, ""); f.Code != aadstsCode(n) || !strings.Contains(f.Fix, fix) || !strings.Contains(f.Cause, "AADSTS") {
			t.Errorf("AADSTS%d: %+v, want a fix naming %q", n, f, fix)
		}
	}
	if f := AADSTS(subject, 123456, "AADSTS123456: Something new."); f.Code != CodeAADSTS || !strings.Contains(f.Fix, "code=123456") {
		t.Errorf("unknown code: %+v", f)
	}
}

// TestDocumented: docs/doctor.md names every code.
func TestDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/doctor.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range AllCodes() {
		if !strings.Contains(string(b), "`"+c+"`") {
			t.Errorf("docs/doctor.md does not document %s", c)
		}
	}
}

// TestGraphAnswers: Graph's refusals by status and code, with the claims of the token sent. The
// doctor's tests produce most of them end to end against the emulator; a 5xx (retried for seconds
// there) and the delegated 403 for a token without a mail scope are checked here too.
func TestGraphAnswers(t *testing.T) {
	user, _ := ParseClaims(jwt(t, map[string]any{"aud": "https://graph.microsoft.com", "scp": "Mail.ReadWrite Mail.Send", "upn": "alice@contoso.com"}))
	noMail, _ := ParseClaims(jwt(t, map[string]any{"aud": "https://graph.microsoft.com", "scp": "User.Read", "upn": "alice@contoso.com"}))
	app, _ := ParseClaims(jwt(t, map[string]any{"aud": "https://graph.microsoft.com", "roles": []any{"Mail.ReadWrite"}, "oid": "5b1c", "idtyp": "app"}))
	appSubject := subject
	appSubject.AppOnly, appSubject.Flow = true, "client_credentials"
	for _, tc := range []struct {
		name string
		s    Subject
		c    *Claims
		ge   graph.Error
		code string
		fix  string
	}{
		{"token refused", subject, user, graph.Error{Status: 401, Code: "InvalidAuthenticationToken"}, CodeGraphToken, "graph, cloud and authority"},
		{"delegated, no mail scope", subject, noMail, graph.Error{Status: 403, Code: "ErrorAccessDenied"}, CodeGraphScope, "Delegated > Mail.ReadWrite"},
		{"delegated, another mailbox", subject, user, graph.Error{Status: 403, Code: "ErrorAccessDenied"}, CodeGraphDenied, "Mail.ReadWrite.Shared"},
		{"application access policy", appSubject, app, graph.Error{Status: 403, Code: "ErrorAccessDenied", Message: "Access to OData is disabled."}, CodeGraphPolicy, "New-ApplicationAccessPolicy"},
		{"not in Exchange Online", appSubject, app, graph.Error{Status: 404, Code: "MailboxNotEnabledForRESTAPI"}, CodeGraphNoREST, "Get-Mailbox -Identity alice@contoso.com"},
		{"unknown mailbox", appSubject, app, graph.Error{Status: 404, Code: "ErrorInvalidUser"}, CodeGraphNotFound, "/users/alice@contoso.com"},
		{"throttled", appSubject, app, graph.Error{Status: 429, Code: "ApplicationThrottled"}, CodeGraphThrottled, "Retry-After"},
		{"unavailable", appSubject, app, graph.Error{Status: 503, Code: "ServiceNotAvailable"}, CodeGraphUnexpected, "try again later"},
		{"other", appSubject, app, graph.Error{Status: 400, Code: "BadRequest"}, CodeGraphUnexpected, "Graph's error code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Graph(tc.s, tc.c, &tc.ge)
			if f.Code != tc.code || f.Step != "mailbox" || !strings.Contains(f.Fix, tc.fix) {
				t.Errorf("%+v, want %s naming %q", f, tc.code, tc.fix)
			}
		})
	}
}

// TestTimeouts: a deadline the identity platform missed (auth's transient *Error around the context's
// error) is MO-IDP-TRANSIENT; one a mail server missed (wrapped by the TLS handshake, say) is
// MO-NET-TIMEOUT, and so is a bare deadline, which auth never returns.
func TestTimeouts(t *testing.T) {
	idp := &auth.Error{Account: "a", Op: "token", Transient: true, Err: context.DeadlineExceeded}
	if f, ok := TokenError(subject, idp); !ok || f.Code != CodeIdPTransient || f.Cause != "the identity platform did not answer in time" {
		t.Errorf("token deadline: %+v %v", f, ok)
	}
	if _, ok := TokenError(subject, context.DeadlineExceeded); ok {
		t.Error("a bare deadline taken for the identity platform's")
	}
	handshake := fmt.Errorf("TLS handshake with 127.0.0.1 failed: %w", context.DeadlineExceeded)
	if _, ok := TokenError(subject, handshake); ok {
		t.Error("a mail server's timeout taken for the identity platform's")
	}
	if f, ok := Explain(subject, Failure{Protocol: "imap", Addr: "127.0.0.1:993", Err: handshake}); !ok || f.Code != CodeTimeout {
		t.Errorf("handshake deadline: %+v %v", f, ok)
	}
}

// TestExplainTakesAFailure: Explain reads a Failure, whose zero Now is this machine's clock (an
// expired token is judged by it), and Probed narrows a finding with a Probe, the service principal's
// object id in the fix coming from its Claims.
func TestExplainTakesAFailure(t *testing.T) {
	now := time.Now()
	c, err := ParseClaims(jwt(t, map[string]any{"aud": "https://outlook.office.com", "scp": "IMAP.AccessAsUser.All", "upn": "alice@contoso.com",
		"iat": float64(now.Add(-2 * time.Hour).Unix()), "exp": float64(now.Add(-time.Hour).Unix())}))
	if err != nil {
		t.Fatal(err)
	}
	refused := &mailerr.Error{Protocol: "IMAP", Step: "AUTHENTICATE XOAUTH2", Server: "NO AUTHENTICATE failed."}
	x := Failure{Protocol: "imap", Addr: "outlook.office365.com:993", Claims: c, Err: refused}
	if f, ok := Explain(subject, x); !ok || f.Code != CodeTokenExpired {
		t.Errorf("a token expired an hour ago, judged now: %+v %v, want %s", f, ok, CodeTokenExpired)
	}
	x.Now = now.Add(-90 * time.Minute)
	if f, ok := Explain(subject, x); !ok || f.Code == CodeTokenExpired {
		t.Errorf("the same token judged before it expired: %+v %v, want another finding", f, ok)
	}
	if _, ok := Explain(subject, Failure{Protocol: "imap"}); ok {
		t.Error("Explain of no error found something")
	}

	app, err := ParseClaims(jwt(t, map[string]any{"aud": "https://outlook.office365.com", "roles": []any{"IMAP.AccessAsApp", "SMTP.SendAsApp"},
		"oid": "5b1c0d2e-aaaa-bbbb-cccc-000000000001", "idtyp": "app"}))
	if err != nil {
		t.Fatal(err)
	}
	uncertain := Finding{Code: CodeNotConnected}
	if f := Probed(subject, uncertain, Probe{Protocol: "imap", Other: "smtp", Outcome: ProbeOpened, Claims: app}); f.Code != CodeIMAPDisabled {
		t.Errorf("SMTP opened the mailbox IMAP could not: %+v, want %s", f, CodeIMAPDisabled)
	}
	if f := Probed(subject, uncertain, Probe{Protocol: "imap", Other: "smtp", Outcome: ProbeRefused, Claims: app}); f.Code != CodeAppNoAccess || !strings.Contains(f.Fix, "5b1c0d2e-aaaa-bbbb-cccc-000000000001") {
		t.Errorf("SMTP refused too: %+v, want %s naming the service principal", f, CodeAppNoAccess)
	}
	if f := Probed(subject, uncertain, Probe{Protocol: "imap", Other: "smtp", Outcome: ProbeInconclusive, Claims: app}); f != uncertain {
		t.Errorf("an inconclusive probe changed the finding: %+v", f)
	}
}

// TestGraphSend: a 403 to a send names Mail.Send; ErrorSendAsDenied is the From address; anything
// else is Graph's finding.
func TestGraphSend(t *testing.T) {
	for _, tc := range []struct {
		ge   graph.Error
		code string
		fix  string
	}{
		{graph.Error{Status: 403, Code: "ErrorAccessDenied", Message: "Access is denied. Check credentials and try again."}, CodeGraphSend, "Microsoft Graph > Mail.Send"},
		{graph.Error{Status: 403, Code: "ErrorSendAsDenied"}, CodeSendAs, "Add-RecipientPermission"},
		{graph.Error{Status: 404, Code: "MailboxNotEnabledForRESTAPI"}, CodeGraphNoREST, "Get-Mailbox"},
		{graph.Error{Status: 429, Code: "ApplicationThrottled"}, CodeGraphThrottled, "Retry-After"},
	} {
		if f := GraphSend(subject, &tc.ge); f.Code != tc.code || !strings.Contains(f.Fix, tc.fix) {
			t.Errorf("%s: %+v, want %s naming %q", tc.ge.Code, f, tc.code, tc.fix)
		}
	}
}
