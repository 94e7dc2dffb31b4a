package mailoauthtest_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/mailoauthtest"
	"github.com/mailoauth/mailoauth/smtp"
)

// The default world's daemon (client credentials, opening alice's mailbox) sends bob a message over
// SMTP; the Server shows where it arrived. In a test, mailoauthtest.NewServer(t, ...) starts the
// Server and closes it at the end of the test.
func Example() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	daemon, err := auth.NewAccount(srv.Account("daemon"), auth.Options{})
	if err != nil {
		log.Fatal(err)
	}
	c, err := smtp.Dial(ctx, smtp.ForAccount(daemon))
	if err != nil {
		log.Fatal(err)
	}
	msg := "From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: Hello\r\n\r\nHi Bob.\r\n"
	if err := c.SendMail("alice@contoso.test", []string{"bob@contoso.test"}, strings.NewReader(msg)); err != nil {
		log.Fatal(err)
	}
	c.Quit()

	msgs, err := srv.Messages("bob@contoso.test")
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Println(m.Folder, m.Subject)
	}
	// Output: INBOX Hello
}

// A world built in Go: one user and one app, whose account (named after the app) sends as the user.
func Example_world() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{World: &mailoauthtest.World{
		Users: []mailoauthtest.User{{Address: "carol@fabrikam.test"}},
		Apps:  []mailoauthtest.App{{Name: "mailer", Flow: config.FlowClientCredentials}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	acc := srv.Account("mailer")
	fmt.Println(acc.Flow, acc.Mailbox)
	mailer, err := auth.NewAccount(acc, auth.Options{})
	if err != nil {
		log.Fatal(err)
	}
	c, err := smtp.Dial(ctx, smtp.ForAccount(mailer))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.SendMail("carol@fabrikam.test", []string{"carol@fabrikam.test"}, strings.NewReader("Subject: Note to self\r\n\r\n.\r\n")); err != nil {
		log.Fatal(err)
	}
	c.Quit()
	msgs, _ := srv.Messages("carol@fabrikam.test")
	for _, m := range msgs {
		fmt.Printf("%s: %s\n", m.Folder, m.Subject)
	}
	// Output:
	// client_credentials carol@fabrikam.test
	// INBOX: Note to self
	// Sent Items: Note to self
}
