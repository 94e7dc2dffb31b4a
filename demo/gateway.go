package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/gateway/imapgw"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/mail"
	"github.com/mailoauth/mailoauth/proxy"
)

// gateway serves the IMAP listener via Graph of the emulator's config in-process, as `mailoauth
// proxy` does: a password-only program logs in as alice and finds in her Sent Items the message the
// tour sent over Graph, with its attachment byte-identical. No IMAP server is involved: the proxy
// serves IMAP itself and carries out each command with Graph calls on daemon's token.
func (t *tour) gateway(ctx context.Context, cfg *config.File, m *auth.Manager) error {
	var via *config.Listener
	for i, l := range cfg.Proxy.Listeners {
		if l.Via == config.ViaGraph && l.Protocol == config.ProtocolIMAP {
			via = &cfg.Proxy.Listeners[i]
		}
	}
	if via == nil {
		return nil
	}
	return t.step("the Graph gateway: the same program over IMAP via Graph (the proxy serves IMAP itself and carries it out with Graph calls as daemon)", func(s *Step) error {
		p, l := *cfg.Proxy, *via
		l.Listen = "127.0.0.1:0" // the config's port may be taken by a running `mailoauth proxy`
		p.Listeners = []config.Listener{l}
		o := gateway.Options{}
		c, addr, stop, err := loginThrough(ctx, &p, m, proxy.Options{Gateway: &proxy.Gateway{
			Mailboxes: gateway.NewMailboxes(nil, o),
			IMAP: func(on proxy.GatewayListener) error {
				return imapgw.New(imapgw.Options{TLS: on.TLS, PlainLogin: on.LocalTLS == config.LocalTLSNone, Gateway: o}).Serve(on.Listener)
			},
		}})
		if err != nil {
			return err
		}
		defer stop()
		detail, err := readSent(c)
		if err != nil {
			return err
		}
		s.Detail = fmt.Sprintf("LOGIN %s ok through %s; %s", world.Alice, addr, detail)
		return c.Logout().Wait()
	})
}

// readSent finds the folder LIST marks \Sent, and in it the message sent over Graph, and checks its
// attachment; it returns what it found, for the step's line.
func readSent(c *imapclient.Client) (string, error) {
	folders, err := c.List("", "*", nil).Collect()
	if err != nil {
		return "", err
	}
	sent := ""
	for _, f := range folders {
		for _, a := range f.Attrs {
			if a == goimap.MailboxAttrSent {
				sent = f.Mailbox
			}
		}
	}
	if sent == "" {
		return "", fmt.Errorf("LIST shows %d folders and none marked \\Sent", len(folders))
	}
	sel, err := c.Select(sent, &goimap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return "", err
	}
	var uid goimap.UID
	if sel.NumMessages > 0 {
		var all goimap.SeqSet
		all.AddRange(1, 0) // 1:*
		envs, err := c.Fetch(all, &goimap.FetchOptions{UID: true, Envelope: true}).Collect()
		if err != nil {
			return "", err
		}
		for _, e := range envs {
			if e.Envelope != nil && e.Envelope.Subject == graphSubject {
				uid = e.UID
			}
		}
	}
	if uid == 0 {
		return "", fmt.Errorf("the message sent over Graph is not in %q (%d messages)", sent, sel.NumMessages)
	}
	body := &goimap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(goimap.UIDSetNum(uid), &goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{body}}).Collect()
	if err != nil {
		return "", err
	}
	if len(msgs) != 1 {
		return "", errors.New("FETCH BODY[] of the message sent over Graph gave no message")
	}
	msg, err := mail.Parse(msgs[0].FindBodySection(body))
	if err != nil {
		return "", err
	}
	want := attachmentData()
	if len(msg.Attachments) != 1 || msg.Attachments[0].Name != attachmentName || !bytes.Equal(msg.Attachments[0].Data, want) {
		return "", fmt.Errorf("the message sent over Graph came back through the gateway with %d attachments, not the one sent (%q, sha256 %s)", len(msg.Attachments), attachmentName, fingerprint(want))
	}
	return fmt.Sprintf("LIST: %d folders; SELECT %q: %d messages; FETCH ENVELOPE finds %q, BODY[] its attachment byte-identical (sha256 %s)",
		len(folders), sent, sel.NumMessages, msg.Subject, fingerprint(msg.Attachments[0].Data)), nil
}
