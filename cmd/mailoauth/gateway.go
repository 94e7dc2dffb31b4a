package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/gateway/imapgw"
	"github.com/mailoauth/mailoauth/gateway/pop3gw"
	"github.com/mailoauth/mailoauth/gateway/smtpgw"
	"github.com/mailoauth/mailoauth/proxy"
)

// gatewayOptions are [proxy.gateway]'s settings as the gateway takes them.
func gatewayOptions(g *config.Gateway, log *slog.Logger) gateway.Options {
	return gateway.Options{
		DontSaveToSentItems: !g.SavesToSentItems(),
		DeletePermanently:   g.DeletesPermanently(),
		PollInterval:        g.Poll(),
		Log:                 log,
	}
}

// newGateway is the proxy's Graph gateway: its mailboxes, with UIDs kept beside the token store,
// and the protocol servers of package gateway's subpackages. It is made for every proxy, so that
// a reload may add a listener via Graph; the UID store is only written when one serves. Close
// the returned io.Closer when the proxy is done.
func newGateway(cfg *config.File, log *slog.Logger, idle time.Duration) (*proxy.Gateway, io.Closer, error) {
	uids, closer, err := gateway.OpenUIDStore(cfg.Store)
	if err != nil {
		return nil, nil, err
	}
	log = log.With("component", "gateway")
	o := gatewayOptions(cfg.Proxy.Gateway, log)
	if idle == 0 {
		idle = 31 * time.Minute // the proxy's default
	}
	return &proxy.Gateway{
		Mailboxes: gateway.NewMailboxes(uids, o),
		IMAP: func(on proxy.GatewayListener) error {
			return imapgw.New(imapgw.Options{TLS: on.TLS, PlainLogin: on.LocalTLS == config.LocalTLSNone, Gateway: o, Log: log}).Serve(on.Listener)
		},
		SMTP: func(on proxy.GatewayListener) error {
			return smtpgw.New(smtpgw.Options{Hostname: "mailoauth-proxy", TLS: on.TLS, Gateway: o, Log: log}).Serve(on.Listener)
		},
		POP3: func(ctx context.Context, conn net.Conn, r *bufio.Reader, mb *gateway.Mailbox) error {
			return pop3gw.Serve(ctx, conn, r, mb, pop3gw.Options{IdleTimeout: idle, Log: log})
		},
	}, closer, nil
}
