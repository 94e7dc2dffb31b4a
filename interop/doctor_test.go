//go:build unix

package interop

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/mailerr"
	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/doctor"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestDoctorExplainsDovecotRefusals: Dovecot refuses a bad token with its own plain words ("NO
// Authentication failed."), which say nothing about why; the doctor's catalogue diagnoses the
// refusal from the claims of the token that was sent: a Graph audience, another user's token, an
// expired one.
func TestDoctorExplainsDovecotRefusals(t *testing.T) {
	l := need(t, false)
	f, err := l.emu.Config()
	if err != nil {
		t.Fatal(err)
	}
	base := f.Accounts["alice"]
	// The proxy's view: its account opens the mailbox the program asked for.
	accountFor := func(t *testing.T, mailbox string) *auth.Account {
		a, err := auth.NewAccount(&config.Account{Name: "alice", Email: world.Alice, Mailbox: mailbox, Tenant: base.Tenant,
			ClientID: base.ClientID, Flow: config.FlowInteractive, Authority: base.Authority, Protocols: []string{"imap"}}, auth.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		name, user, token, code, fix string
	}{
		{"graph-audience", world.Alice, l.tok.graph, "MO-AUD-GRAPH", "https://outlook.office.com/IMAP.AccessAsUser.All"},
		{"wrong-user", world.Bob, l.tok.good, "MO-USER-NO-FULLACCESS", "Add-MailboxPermission -Identity bob@contoso.test -User alice@contoso.test"},
		{"expired", world.Alice, l.tok.expired, "MO-TOKEN-EXPIRED", "mailoauth token alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := imap.Dial(context.Background(), imap.Options{Addr: hostport(l.ports.IMAPS), TLS: dial.Implicit, TLSConfig: l.tlsConfig(),
				Username: tc.user, Tokens: token.Static(&token.Token{AccessToken: tc.token})})
			var ie *mailerr.Error
			if !errors.As(err, &ie) || !strings.HasPrefix(ie.Server, "NO ") {
				t.Fatalf("Dovecot accepted or answered otherwise: %v", err)
			}
			fd := doctor.ExplainRefusal(accountFor(t, tc.user), "imap", ie.Server, tc.token)
			if fd.Code != tc.code || !strings.Contains(fd.Fix, tc.fix) {
				t.Fatalf("Dovecot said %q; finding %+v, want %s naming %q", ie.Server, fd, tc.code, tc.fix)
			}
			if strings.Contains(fd.String(), tc.token) {
				t.Fatal("the finding repeats the token")
			}
		})
	}
}
