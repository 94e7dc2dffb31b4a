package mailoauthtest_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/mailoauthtest"
	"github.com/mailoauth/mailoauth/smtp"
)

// Exactly one token request: a program that sends three messages must reuse its token, not ask the
// identity platform each time. The Server's events record every token request, login and delivery.
func ExampleServer_Events() {
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
	for _, subject := range []string{"one", "two", "three"} {
		c, err := smtp.Dial(ctx, smtp.ForAccount(daemon))
		if err != nil {
			log.Fatal(err)
		}
		msg := "From: alice@contoso.test\r\nTo: bob@contoso.test\r\nSubject: " + subject + "\r\n\r\nHi.\r\n"
		if err := c.SendMail("alice@contoso.test", []string{"bob@contoso.test"}, strings.NewReader(msg)); err != nil {
			log.Fatal(err)
		}
		c.Quit()
	}

	requests := srv.Events(mailoauthtest.EventFilter{
		Kinds: []mailoauthtest.EventKind{mailoauthtest.TokenIssued, mailoauthtest.TokenRefused},
	})
	fmt.Println("token requests:", len(requests))
	for _, e := range requests {
		fmt.Println(e.Kind, e.Grant, e.App)
	}
	delivered := srv.Events(mailoauthtest.EventFilter{
		Kinds: []mailoauthtest.EventKind{mailoauthtest.MessageDelivered}, Mailbox: "bob@contoso.test",
	})
	fmt.Println("delivered to bob:", len(delivered))
	// Output:
	// token requests: 1
	// token.issued client_credentials daemon
	// delivered to bob: 3
}
