package check_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestScenarioRefusals runs check against the accounts of the documented scenario files
// (emulator/world/testdata, shown in docs/scenarios.md): each condition there must show up in check
// with the server's words and the fix.
func TestScenarioRefusals(t *testing.T) {
	for _, tc := range []struct {
		scenario, account, protocol string
		ok                          bool
		said, cause, code           string
	}{
		{"no-service-principal", "daemon", "imap", false, "AUTHENTICATE failed.", "New-ServicePrincipal", "MO-NO-SERVICE-PRINCIPAL"},
		{"no-service-principal", "daemon", "smtp", false, "535 5.7.3", "New-ServicePrincipal", "MO-APP-EXCHANGE-REFUSED"},
		{"unconsented", "daemon", "imap", false, "AUTHENTICATE failed.", "admin consent", "MO-ROLE-MISSING"},
		{"unconsented", "alice-password", "imap", false, "", "AADSTS65001", "MO-AADSTS65001"},
		{"imap-pop-disabled", "alice", "imap", false, "authenticated but not connected", "ImapEnabled $true", "MO-IMAP-DISABLED"},
		{"imap-pop-disabled", "bob", "pop", false, "Authentication failure", "PopEnabled $true", "MO-POP-DISABLED"},
		{"smtp-auth-disabled-tenant", "bob", "smtp", false, "SmtpClientAuthentication is disabled", "SmtpClientAuthenticationDisabled $false", "MO-SMTP-AUTH-DISABLED"},
		{"smtp-auth-disabled-tenant", "alice", "smtp", true, "", "", ""},
		{"smtp-auth-disabled-mailbox", "bob", "smtp", false, "5.7.139", "SmtpClientAuthenticationDisabled $false", "MO-SMTP-AUTH-DISABLED"},
		{"no-fullaccess", "daemon-bob", "imap", false, "", "FullAccess", "MO-NOT-CONNECTED"},
		{"no-fullaccess", "bob-support", "imap", false, "", "holds no FullAccess on support@contoso.test", "MO-USER-NO-FULLACCESS"},
	} {
		t.Run(tc.scenario+"/"+tc.account+"/"+tc.protocol, func(t *testing.T) {
			w, err := world.LoadScenario(filepath.Join("..", "internal", "emulator", "world", "testdata", tc.scenario+".toml"))
			if err != nil {
				t.Fatal(err)
			}
			var user string
			for _, a := range w.Accounts {
				if a.Name == tc.account {
					user = a.Email
				}
			}
			l := emulatortest.Start(t, emulator.Options{World: w, AutoApprove: user})
			e := l.E
			a, err := auth.New(l.Config, auth.Options{}).Account(tc.account)
			if err != nil {
				t.Fatal(err)
			}
			if f := a.Config().Flow; f == config.FlowInteractive || f == config.FlowDevice {
				browser := e.HTTPClient()
				if _, err := a.Login(context.Background(), auth.LoginOptions{Device: true, DeviceCode: func(auth.DeviceCode) {} /* the emulator approves it */, OpenURL: func(u string) error {
					r, err := browser.Get(u)
					if err == nil {
						r.Body.Close()
					}
					return err
				}}); err != nil {
					t.Fatal(err)
				}
			}
			rep := check.Run(context.Background(), a, []string{tc.protocol})
			r := rep.Results[0]
			if r.OK != tc.ok {
				t.Fatalf("ok = %v, want %v: said %q, cause %q, steps %+v", r.OK, tc.ok, r.Said, r.Cause, r.Steps)
			}
			if !strings.Contains(r.Said, tc.said) || !strings.Contains(r.Cause, tc.cause) {
				t.Fatalf("server said %q (want %q), cause %q (want %q)", r.Said, tc.said, r.Cause, tc.cause)
			}
			if tc.code != "" && (r.Finding == nil || r.Finding.Code != tc.code) {
				t.Fatalf("finding %+v, want code %s", r.Finding, tc.code)
			}
		})
	}
}
