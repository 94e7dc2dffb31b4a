package smtp_test

import (
	"bytes"
	"context"
	"fmt"
	"log"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/mail"
	"github.com/mailoauth/mailoauth/mailoauthtest"
	"github.com/mailoauth/mailoauth/smtp"
)

// An app-only daemon (client credentials with a secret, no user) sends one mail over SMTP as the
// mailbox the app was granted, with a report attached from memory. A local Microsoft 365
// (mailoauthtest) stands in for the real one; without it, the program is the same minus the lines
// marked as the emulator's.
func Example() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	// In a real program: tenant, client id and secret from your app registration.
	reg := srv.Account("daemon")
	tenant, clientID, secret := reg.Tenant, reg.ClientID, reg.ClientSecret

	app, err := auth.NewAccount(&config.Account{
		Flow:         config.FlowClientCredentials,
		Tenant:       tenant,
		ClientID:     clientID,
		ClientSecret: secret,
		Mailbox:      "alice@contoso.test", // the app sends as alice (SMTP.SendAsApp)
		Protocols:    []string{config.ProtocolSMTP},
		// The emulator's: its identity platform, CA and SMTP server. Omit for Microsoft 365.
		Authority: reg.Authority, RootCAs: reg.RootCAs, SMTP: reg.SMTP,
	}, auth.Options{})
	if err != nil {
		log.Fatal(err)
	}
	msg, err := mail.Build(mail.Draft{
		From:        []string{"alice@contoso.test"},
		To:          []string{"bob@contoso.test"},
		Subject:     "Nightly report",
		Text:        "All backups completed.\n",
		Attachments: []mail.Attachment{{Name: "report.csv", Data: []byte("job,status\nbackup,ok\n")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := smtp.Dial(ctx, smtp.ForAccount(app))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("alice@contoso.test", []string{"bob@contoso.test"}, bytes.NewReader(msg)); err != nil {
		log.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		log.Fatal(err)
	}

	// The emulator shows where the message arrived.
	got, err := srv.Messages("bob@contoso.test")
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range got {
		fmt.Println(m.Folder, m.Subject)
	}
	// Output: INBOX Nightly report
}
