package graph_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/mailoauthtest"
)

// An app-only daemon works through a mailbox over Microsoft Graph: it lists the unread messages of
// alice's inbox, answers each sender and marks the message read. An app-only client opens the
// account's Mailbox (/users/alice@contoso.test); a delegated one opens the signed-in user's (/me).
// A local Microsoft 365 (mailoauthtest) stands in for the real one.
func ExampleForAccount() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.Deliver("alice@contoso.test", []byte("From: bob@contoso.test\r\nSubject: Invoice 42\r\n\r\nAttached.\r\n"))
	// In a real program: tenant, client id and secret from your app registration.
	reg := srv.Account("daemon")
	tenant, clientID, secret := reg.Tenant, reg.ClientID, reg.ClientSecret

	app, err := auth.NewAccount(&config.Account{
		Flow:         config.FlowClientCredentials,
		Tenant:       tenant,
		ClientID:     clientID,
		ClientSecret: secret,
		Mailbox:      "alice@contoso.test", // granted to the app (Mail.ReadWrite, Mail.Send)
		Protocols:    []string{config.ProtocolGraph},
		// The emulator's: its identity platform, CA and Graph root. Omit for Microsoft 365.
		Authority: reg.Authority, RootCAs: reg.RootCAs, Graph: reg.Graph,
	}, auth.Options{})
	if err != nil {
		log.Fatal(err)
	}
	mailbox := graph.ForAccount(app)
	unread, err := mailbox.ListMessages(ctx, "inbox", graph.ListOptions{Unread: true})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range unread {
		fmt.Println("received:", m.Subject, "from", m.From.Address)
		reply := &graph.Message{Subject: "Re: " + m.Subject, Body: "Thank you, received.", To: []graph.Address{*m.From}}
		if err := mailbox.SendMail(ctx, reply); err != nil {
			log.Fatal(err)
		}
		if err := mailbox.MarkRead(ctx, m.ID, true); err != nil {
			log.Fatal(err)
		}
	}
	unread, err = mailbox.ListMessages(ctx, "inbox", graph.ListOptions{Unread: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("unread left:", len(unread))

	// The emulator shows what bob has now.
	got, err := srv.Messages("bob@contoso.test")
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range got {
		fmt.Println("bob's", m.Folder+":", m.Subject)
	}
	// Output:
	// received: Invoice 42 from bob@contoso.test
	// unread left: 0
	// bob's INBOX: Re: Invoice 42
}

// A program keeps alice's inbox in sync: the first delta round lists every message, later rounds
// only what changed since the State they were given. ClientFor asks for immutable ids (a message
// keeps its id when moved) and shares a Limiter of Graph's 4 requests in flight per mailbox.
func ExampleClient_MessagesDelta() {
	ctx := context.Background()
	srv, err := mailoauthtest.Start(ctx, mailoauthtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.Deliver("alice@contoso.test", []byte("From: bob@contoso.test\r\nSubject: Invoice 42\r\n\r\nAttached.\r\n"))
	reg := srv.Account("daemon")
	app, err := auth.NewAccount(&config.Account{
		Flow: config.FlowClientCredentials, Tenant: reg.Tenant, ClientID: reg.ClientID, ClientSecret: reg.ClientSecret,
		Mailbox: "alice@contoso.test", Protocols: []string{config.ProtocolGraph},
		Authority: reg.Authority, RootCAs: reg.RootCAs, Graph: reg.Graph,
	}, auth.Options{})
	if err != nil {
		log.Fatal(err)
	}
	mailbox := graph.ClientFor(app, "", graph.NewLimiter(4))
	// Calls wait out Graph's Retry-After only within their deadline.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	first, err := mailbox.MessagesDelta(ctx, "inbox", "", graph.DeltaOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range first.Changed {
		fmt.Println("listed:", m.Subject, m.Size > 0)
	}
	srv.Deliver("alice@contoso.test", []byte("From: bob@contoso.test\r\nSubject: Invoice 43\r\n\r\nAttached.\r\n"))
	next, err := mailbox.MessagesDelta(ctx, "inbox", first.State, graph.DeltaOptions{})
	if errors.Is(err, graph.ErrDeltaExpired) {
		log.Fatal("Graph forgot the state: list the folder again with state \"\"")
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range next.Changed {
		fmt.Println("new:", m.Subject)
	}
	// Output:
	// listed: Invoice 42 true
	// new: Invoice 43
}
