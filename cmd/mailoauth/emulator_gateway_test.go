package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestEmulatorConfigServesViaGraph: with the config the emulator wrote and nothing else, `mailoauth
// proxy` serves its three listeners via Graph: a password-only program sends over SMTP, sees the
// message counted over POP3 and reads its subject over IMAP — every step through the Graph gateway,
// as the local user alice with the emulator's proxy password.
func TestEmulatorConfigServesViaGraph(t *testing.T) {
	e, cfg := startEmulator(t, emulator.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--config", cfg, "proxy"}, strings.NewReader(""), &out, &logs) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, addr := range e.GatewayAddrs {
		for deadline := time.Now().Add(60 * time.Second); !strings.Contains(logs.String(), "addr="+addr); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the proxy never listened on %s:\n%s", addr, logs.String())
			}
		}
	}
	const subject = "through the gateway"

	host, _, _ := net.SplitHostPort(e.GatewayAddrs["smtp"])
	msg := "From: " + world.Alice + "\r\nTo: " + world.Alice + "\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
	if err := smtp.SendMail(e.GatewayAddrs["smtp"], smtp.PlainAuth("", world.Alice, emulator.ProxyPassword, host),
		world.Alice, []string{world.Alice}, []byte(msg)); err != nil {
		t.Fatalf("SMTP via Graph: %v\n%s", err, logs.String())
	}

	c, err := net.Dial("tcp", e.GatewayAddrs["pop"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	say := func(cmd string) string {
		t.Helper()
		if cmd != "" {
			fmt.Fprintf(c, "%s\r\n", cmd)
		}
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("POP3 via Graph, %q: %q %v\n%s", strings.Fields(cmd + " greeting")[0], l, err, logs.String())
		}
		return l
	}
	say("")
	say("USER " + world.Alice)
	say("PASS " + emulator.ProxyPassword)
	var n, size int
	if _, err := fmt.Sscanf(say("STAT"), "+OK %d %d", &n, &size); err != nil || n < 1 {
		t.Errorf("POP3 via Graph: STAT gives %d messages (%v), want the one sent", n, err)
	}
	say("QUIT")

	ic, err := imapclient.DialInsecure(e.GatewayAddrs["imap"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login(world.Alice, emulator.ProxyPassword).Wait(); err != nil {
		t.Fatalf("IMAP via Graph LOGIN: %v\n%s", err, logs.String())
	}
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var all goimap.SeqSet
	all.AddRange(1, 0)
	msgs, err := ic.Fetch(all, &goimap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range msgs {
		found = found || m.Envelope != nil && m.Envelope.Subject == subject
	}
	if !found {
		t.Errorf("IMAP via Graph: INBOX's %d messages have not the one sent over SMTP via Graph", len(msgs))
	}
	_ = ic.Logout().Wait()

	// Through Graph only: Exchange's IMAP, POP3 and SMTP servers accepted no login; Graph did.
	viaGraph := false
	for _, ev := range e.Events.Since(0, nil, 0) {
		if ev.Kind != events.AuthAccepted {
			continue
		}
		switch ev.Protocol {
		case "graph":
			viaGraph = true
		case "imap", "pop", "smtp":
			t.Errorf("Exchange's %s server accepted a login: the sessions did not all go via Graph", ev.Protocol)
		}
	}
	if !viaGraph {
		t.Error("the emulator's events show no Graph request")
	}
}
