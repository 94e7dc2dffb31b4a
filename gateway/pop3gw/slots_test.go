package pop3gw_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/gateway"
)

// A program that reads a RETR slowly (a slow link, or on purpose) must not keep one of the
// mailbox's four Graph request slots while it does: four of them would leave every other session
// of the mailbox, IMAP and SMTP included, waiting for Graph until they give up.
func TestSlowReadersLeaveGraphSlots(t *testing.T) {
	l := newLab(t)
	// Larger than what loopback sockets buffer, so that a program not reading holds the transfer.
	var big bytes.Buffer
	big.WriteString("Subject: big\r\nFrom: bob@contoso.test\r\n\r\n")
	for big.Len() < 32<<20 {
		big.WriteString(strings.Repeat("z", 998) + "\r\n")
	}
	if err := l.srv.Deliver(l.address, big.Bytes()); err != nil {
		t.Fatal(err)
	}
	mb := l.open(gateway.Options{})
	for range 4 {
		s, hello := login(t, mb)
		if !strings.HasPrefix(hello, "+OK") {
			t.Fatalf("login: %q", hello)
		}
		if err := s.tp.PrintfLine("RETR 1"); err != nil {
			t.Fatal(err)
		}
		if got := s.read(); !strings.HasPrefix(got, "+OK") { // then nothing more is read
			t.Fatalf("RETR 1: %q", got)
		}
	}
	f, err := mb.Folder(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	// Graph answers this at once, unless the four transfers hold every slot.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.Sync(ctx, 0); err != nil {
		t.Fatalf("with four programs reading a RETR slowly, the mailbox's next Graph request: %v", err)
	}
}
