package token_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/mailoauthtest"
	"github.com/mailoauth/mailoauth/token"
)

// A golang.org/x/oauth2 token source — here client credentials against the identity platform's
// token endpoint, but any identity library's will do — drives mailoauth's IMAP client. A local
// Microsoft 365 (mailoauthtest) stands in for the real one.
func ExampleFromOAuth2() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	// In a real program: tenant, client id and secret from your app registration, the identity
	// platform at https://login.microsoftonline.com, IMAP at outlook.office365.com:993, and the
	// system's CAs (a nil tlsConfig, and no oauth2.HTTPClient in ctx).
	reg := srv.Account("daemon")
	tenant, clientID, secret := reg.Tenant, reg.ClientID, string(reg.ClientSecret)
	authority, imapAddr, tlsConfig := srv.Authority(), srv.IMAP(), srv.TLSConfig()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}})

	app := clientcredentials.Config{
		ClientID:     clientID,
		ClientSecret: secret,
		TokenURL:     authority + "/" + tenant + "/oauth2/v2.0/token",
		Scopes:       []string{"https://outlook.office365.com/.default"},
	}
	c, err := imap.Dial(ctx, imap.Options{
		Addr:      imapAddr,
		TLSConfig: tlsConfig,
		Username:  "alice@contoso.test",
		Tokens:    token.FromOAuth2(app.TokenSource(ctx), token.Exchange),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.State())
	// Output: authenticated
}

// An account's tokens serve any golang.org/x/oauth2 consumer: here an http.Client calling
// Microsoft Graph with the daemon's app-only token. A local Microsoft 365 (mailoauthtest) stands in
// for the real one.
func ExampleOAuth2() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	// In a real program: the account from your own configuration, Graph at
	// https://graph.microsoft.com/v1.0 and the system's CAs (no oauth2.HTTPClient in ctx).
	daemon, err := auth.NewAccount(srv.Account("daemon"), auth.Options{})
	if err != nil {
		log.Fatal(err)
	}
	graphURL := srv.GraphURL()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig()}})

	client := oauth2.NewClient(ctx, token.OAuth2(ctx, daemon.TokenSource(token.Graph)))
	resp, err := client.Get(graphURL + "/users/alice@contoso.test/mailFolders/inbox")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}

// A token obtained elsewhere (another process, a broker, `mailoauth token`) opens a mailbox as is.
// It is not refreshed: when it expires, the server refuses it. A local Microsoft 365
// (mailoauthtest) stands in for the real one.
func ExampleStatic() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	// In a real program: the token from wherever it comes from, IMAP at outlook.office365.com:993
	// and the system's CAs (a nil tlsConfig).
	daemon, err := auth.NewAccount(srv.Account("daemon"), auth.Options{})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := daemon.Token(ctx, token.Exchange)
	if err != nil {
		log.Fatal(err)
	}
	imapAddr, tlsConfig := srv.IMAP(), srv.TLSConfig()

	c, err := imap.Dial(ctx, imap.Options{
		Addr:      imapAddr,
		TLSConfig: tlsConfig,
		Username:  "alice@contoso.test",
		Tokens:    token.Static(&token.Token{AccessToken: tok.AccessToken, Resource: token.Exchange}),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.State())
	// Output: authenticated
}
