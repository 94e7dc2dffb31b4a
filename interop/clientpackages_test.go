//go:build unix

package interop

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/mailoauth/mailoauth/mailerr"
	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/smtp"
)

// TestAccountClients drives Dovecot and Postfix with the account-level clients (packages imap and
// smtp: dial, TLS, capability check, AUTH, traced) rather than raw go-imap/go-smtp; SMTP uses the
// two-step AUTH (no initial response on the command line), as Microsoft documents it.
func TestAccountClients(t *testing.T) {
	l := need(t, true)
	ctx := context.Background()
	good := token.Static(&token.Token{AccessToken: l.tok.good})
	for _, mech := range []string{sasl.XOAuth2, sasl.OAuthBearer} {
		for _, mode := range []struct {
			name string
			port int
			tls  dial.Mode
		}{{"IMAPS", l.ports.IMAPS, dial.Implicit}, {"IMAP-STARTTLS", l.ports.IMAP, dial.StartTLS}} {
			c, err := imap.Dial(ctx, imap.Options{Addr: hostport(mode.port), TLS: mode.tls, TLSConfig: l.tlsConfig(),
				Username: "alice@contoso.test", Mechanism: mech, Tokens: good})
			if err != nil {
				t.Fatalf("imap.Dial %s %s: %v", mode.name, mech, err)
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatalf("SELECT INBOX after imap.Dial %s: %v", mode.name, err)
			}
			_ = c.Logout().Wait()
		}
		c, err := smtp.Dial(ctx, smtp.Options{Addr: hostport(l.ports.Submission), TLS: dial.StartTLS, TLSConfig: l.tlsConfig(),
			Username: "alice@contoso.test", Mechanism: mech, Tokens: good})
		if err != nil {
			t.Fatalf("smtp.Dial %s: %v", mech, err)
		}
		if err := c.Mail("alice@contoso.test", nil); err != nil {
			t.Fatalf("MAIL FROM after smtp.Dial: %v", err)
		}
		_ = c.Quit()
	}
	// A refused token: the server's words and its error challenge come back in the typed error.
	_, err := smtp.Dial(ctx, smtp.Options{Addr: hostport(l.ports.Submission), TLS: dial.StartTLS, TLSConfig: l.tlsConfig(),
		Username: "bob@contoso.test", Tokens: good})
	var se *mailerr.Error
	if !errors.As(err, &se) || se.Challenge == nil || len(se.Server) < 3 || se.Server[:3] != "535" {
		t.Fatalf("alice's token for bob through Postfix: %#v", err)
	}
}

func hostport(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
