package auth_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/mailoauthtest"
)

// A web app signs its users in with the authorization-code flow (a confidential client with a
// secret) and then opens each user's mailbox over IMAP with that user's own tokens, silently, for as
// long as the refresh token lasts. The app's HTTP handlers are reduced to the calls they make: the
// sign-in handler redirects the browser to AuthCodeURL and keeps the verifier with the state; the
// callback handler checks the state and calls ExchangeCode, and remembers the User it returns (in
// the user's session) for later requests. A local Microsoft 365 (mailoauthtest) stands in for the
// real one and for the users' browsers.
func ExampleAccount_ExchangeCode() {
	ctx := context.Background()
	const password = "their own password" // the emulator's users'
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{World: &mailoauthtest.World{
		Users: []mailoauthtest.User{{Address: "alice@contoso.test", Password: password}, {Address: "bob@contoso.test", Password: password}},
		Apps:  []mailoauthtest.App{{Name: "web", Flow: config.FlowAuthCodeWeb, RedirectURI: "https://mail.contoso.test/callback"}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.Deliver("bob@contoso.test", []byte("Subject: Hi Bob\r\n\r\nHello.\r\n"))
	// In a real program: tenant, client id and secret from your app registration, and a
	// store.Store that keeps the users' tokens between restarts (store.OpenFile).
	reg := srv.Account("web")
	tenant, clientID, secret := reg.Tenant, reg.ClientID, reg.ClientSecret

	app, err := auth.NewAccount(&config.Account{
		Flow:         config.FlowAuthCodeWeb,
		Tenant:       tenant,
		ClientID:     clientID,
		ClientSecret: secret,
		RedirectURI:  "https://mail.contoso.test/callback", // registered with the app
		// The emulator's: its identity platform, CA and IMAP server. Omit for Microsoft 365.
		Authority: reg.Authority, RootCAs: reg.RootCAs, IMAP: reg.IMAP,
	}, auth.Options{})
	if err != nil {
		log.Fatal(err)
	}
	var users []auth.User // what the app's sessions remember
	for _, who := range []string{"alice@contoso.test", "bob@contoso.test"} {
		// The sign-in handler.
		state, opts := rand.Text(), auth.AuthCodeOptions{LoginHint: who}
		authURL, verifier, err := app.AuthCodeURL(ctx, state, opts)
		if err != nil {
			log.Fatal(err)
		}
		// The user's browser (the emulator's): sign in, and come back to the callback with a code.
		callback, err := srv.SignIn(ctx, authURL, who, password)
		if err != nil {
			log.Fatal(err)
		}
		// The callback handler.
		if callback.Query().Get("state") != state {
			log.Fatal("the callback's state is not the one the sign-in began with")
		}
		signIn, err := app.ExchangeCode(ctx, callback.Query().Get("code"), verifier, opts)
		if err != nil {
			log.Fatal(err)
		}
		users = append(users, signIn.User)
	}
	// Any later request: the user's mailbox, with the user's tokens, with no sign-in.
	for _, u := range users {
		c, err := imap.Dial(ctx, imap.ForAccount(app.ForUser(u)))
		if err != nil {
			log.Fatal(err)
		}
		inbox, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(u.Username, "has", inbox.NumMessages, "message(s)")
		c.Close()
	}
	// Output:
	// alice@contoso.test has 0 message(s)
	// bob@contoso.test has 1 message(s)
}
