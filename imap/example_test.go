package imap_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/imap"
	"github.com/mailoauth/mailoauth/mailoauthtest"
	"github.com/mailoauth/mailoauth/store"
	"github.com/mailoauth/mailoauth/token"
)

// checkMail is a delegated IMAP client, one run of it: it opens the user's INBOX with the tokens
// kept in an encrypted file, and asks the person at the terminal to sign in with a device code
// only when there is no token it can use or refresh silently (the first run, or after the refresh
// token was revoked).
func checkMail(ctx context.Context, acc *config.Account, tokenFile, keyFile string, terminal io.Writer) error {
	tokens, err := store.OpenFile(tokenFile, store.KeySource{Key: func() ([]byte, error) { return os.ReadFile(keyFile) }})
	if err != nil {
		return err
	}
	app, err := auth.NewAccount(acc, auth.Options{Store: tokens})
	if err != nil {
		return err
	}
	if _, err := app.Token(ctx, token.Exchange); errors.Is(err, token.ErrLoginRequired) {
		signIn, err := app.Login(ctx, auth.LoginOptions{DeviceCode: func(dc auth.DeviceCode) {
			fmt.Fprintf(terminal, "Open %s and enter %s before %s.\n", dc.VerificationURI, dc.UserCode, dc.ExpiresOn.Format("15:04"))
		}})
		if err != nil {
			return err
		}
		fmt.Println("signed in as", signIn.User.Username)
	}
	c, err := imap.Dial(ctx, imap.ForAccount(app))
	if err != nil {
		return err
	}
	defer c.Close()
	inbox, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return err
	}
	fmt.Println("messages in INBOX:", inbox.NumMessages)
	return c.Logout().Wait()
}

// A delegated IMAP client signs its user in once with a device code; every later run is silent:
// the token comes from the store, or from a refresh with the stored refresh token. A local
// Microsoft 365 (mailoauthtest) stands in for the real one, where alice approves the code at once
// and access tokens live a minute, inside the refresh margin: the second run refreshes.
func Example() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{AutoApprove: "alice@contoso.test", World: &mailoauthtest.World{
		Users:         []mailoauthtest.User{{Address: "alice@contoso.test"}},
		Apps:          []mailoauthtest.App{{Name: "mail-client", Flow: config.FlowDevice}},
		TokenLifetime: time.Minute,
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Deliver("alice@contoso.test", []byte("Subject: Welcome\r\n\r\nHello.\r\n")); err != nil {
		log.Fatal(err)
	}
	// In a real program: tenant and client id from your app registration (a public client), a key
	// file of 32 random bytes, and os.Stderr for the terminal.
	reg := srv.Account("mail-client")
	tenant, clientID := reg.Tenant, reg.ClientID
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "key")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		log.Fatal(err)
	}

	acc := &config.Account{
		Flow:     config.FlowDevice,
		Tenant:   tenant,
		ClientID: clientID,
		Email:    "alice@contoso.test", // Protocols: IMAP and SMTP by default
		// The emulator's: its identity platform, CA and IMAP server. Omit for Microsoft 365.
		Authority: reg.Authority, RootCAs: reg.RootCAs, IMAP: reg.IMAP,
	}
	for range 2 { // two runs of the program, each a new process over the same token file
		if err := checkMail(ctx, acc, filepath.Join(dir, "tokens"), keyFile, io.Discard); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// signed in as alice@contoso.test
	// messages in INBOX: 1
	// messages in INBOX: 1
}
