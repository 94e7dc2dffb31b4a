package sasl_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailoauth/mailoauth/mailoauthtest"
	"github.com/mailoauth/mailoauth/sasl"
)

// XOAUTH2 on plain go-imap, with a token from golang.org/x/oauth2: client credentials straight
// against the identity platform's token endpoint, no other part of mailoauth. A local Microsoft 365
// (mailoauthtest) stands in for the real one.
func ExampleNewXOAuth2Client() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.Deliver("alice@contoso.test", []byte("Subject: Hello\r\n\r\nHi.\r\n"))
	// In a real program: tenant, client id and secret from your app registration, the identity
	// platform at https://login.microsoftonline.com, IMAP at outlook.office365.com:993, and the
	// system's CAs (a nil tlsConfig, and no oauth2.HTTPClient in ctx).
	reg := srv.Account("daemon")
	tenant, clientID, secret := reg.Tenant, reg.ClientID, string(reg.ClientSecret)
	authority, imapAddr := srv.Authority(), srv.IMAP()
	tlsConfig := srv.TLSConfig()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}})

	app := clientcredentials.Config{
		ClientID:     clientID,
		ClientSecret: secret,
		TokenURL:     authority + "/" + tenant + "/oauth2/v2.0/token",
		Scopes:       []string{"https://outlook.office365.com/.default"},
	}
	tok, err := app.Token(ctx)
	if err != nil {
		log.Fatal(err)
	}
	c, err := imapclient.DialTLS(imapAddr, &imapclient.Options{TLSConfig: tlsConfig})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(sasl.NewXOAuth2Client("alice@contoso.test", tok.AccessToken)); err != nil {
		log.Fatal(err)
	}
	inbox, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("messages in INBOX:", inbox.NumMessages)
	// Output: messages in INBOX: 1
}

// XOAUTH2 on plain go-smtp, in two steps as Microsoft documents it for SMTP (the token only when
// the server asks, which keeps a long token off the AUTH command line). The token comes from any
// golang.org/x/oauth2 source; here a client-credentials one, reused until it expires. A local
// Microsoft 365 (mailoauthtest) stands in for the real one.
func ExampleClient_TwoStep() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	// In a real program: tenant, client id and secret from your app registration, the identity
	// platform at https://login.microsoftonline.com, SMTP at smtp.office365.com:587, and the
	// system's CAs (a nil tlsConfig, and no oauth2.HTTPClient in ctx).
	reg := srv.Account("daemon")
	tenant, clientID, secret := reg.Tenant, reg.ClientID, string(reg.ClientSecret)
	authority, smtpAddr := srv.Authority(), srv.SMTP()
	tlsConfig := srv.TLSConfig()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}})

	app := clientcredentials.Config{
		ClientID:     clientID,
		ClientSecret: secret,
		TokenURL:     authority + "/" + tenant + "/oauth2/v2.0/token",
		Scopes:       []string{"https://outlook.office365.com/.default"},
	}
	tokens := oauth2.ReuseTokenSource(nil, app.TokenSource(ctx))
	tok, err := tokens.Token()
	if err != nil {
		log.Fatal(err)
	}
	c, err := gosmtp.DialStartTLS(smtpAddr, tlsConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewXOAuth2Client("alice@contoso.test", tok.AccessToken).TwoStep()); err != nil {
		log.Fatal(err)
	}
	msg := "From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: Lunch?\r\n\r\nAt noon.\r\n"
	if err := c.SendMail("alice@contoso.test", []string{"bob@contoso.test"}, strings.NewReader(msg)); err != nil {
		log.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		log.Fatal(err)
	}

	got, err := srv.Messages("bob@contoso.test")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got[0].Folder, got[0].Subject)
	// Output: INBOX Lunch?
}
