package pop3gw_test

// Sessions over loopback TCP through the gateway's mailbox model to the emulator's Microsoft Graph.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/gateway/pop3gw"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/mailoauthtest"
)

const timeout = 2 * time.Minute // every wait; generous for a busy machine

// lab is an emulator with alice's mailbox open through the gateway, as the proxy opens it.
type lab struct {
	srv     *mailoauthtest.Server
	address string
	open    func(o gateway.Options) *gateway.Mailbox // a new Mailboxes each time: as after a restart
}

func newLab(t *testing.T, subjects ...string) *lab {
	t.Helper()
	srv := mailoauthtest.NewServer(t, mailoauthtest.Options{})
	a, err := auth.NewAccount(srv.Account("daemon"), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	address := a.Mailbox()
	for _, s := range subjects {
		if err := srv.Deliver(address, []byte("Subject: "+s+"\r\nFrom: bob@contoso.test\r\n\r\n.dotted line of "+s+"\r\nend\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	uids := gateway.NewFileUIDStore(t.TempDir())
	return &lab{srv: srv, address: address, open: func(o gateway.Options) *gateway.Mailbox {
		mb := gateway.NewMailboxes(uids, o).Open("daemon", address, graph.ClientFor(a, address, graph.NewLimiter(4)))
		t.Cleanup(func() { mb.Close() })
		return mb
	}}
}

// folders lists the subjects of the mailbox's messages by folder.
func (l *lab) folders(t *testing.T) map[string][]string {
	t.Helper()
	msgs, err := l.srv.Messages(l.address)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, m := range msgs {
		out[m.Folder] = append(out[m.Folder], m.Subject)
	}
	for _, s := range out {
		slices.Sort(s)
	}
	return out
}

type session struct {
	t    *testing.T
	tp   *textproto.Conn
	done chan error
}

// login serves a session on mb as the proxy does after the password check and returns the
// program's side with the login reply.
func login(t *testing.T, mb *gateway.Mailbox) (*session, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- pop3gw.Serve(ctx, c, bufio.NewReader(c), mb, pop3gw.Options{Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(timeout))
	s := &session{t: t, tp: textproto.NewConn(c), done: done}
	return s, s.read()
}

func (s *session) read() string {
	s.t.Helper()
	l, err := s.tp.ReadLine()
	if err != nil {
		s.t.Fatalf("reading a reply: %v", err)
	}
	return l
}

// cmd sends a command and checks that its reply begins with want; a multi-line reply's body is
// returned.
func (s *session) cmd(line, want string, multi bool) string {
	s.t.Helper()
	if err := s.tp.PrintfLine("%s", line); err != nil {
		s.t.Fatal(err)
	}
	got := s.read()
	if !strings.HasPrefix(got, want) {
		s.t.Fatalf("%s: %q, want %q…", line, got, want)
	}
	if !multi || !strings.HasPrefix(got, "+OK") {
		return ""
	}
	b, err := s.tp.ReadDotBytes()
	if err != nil {
		s.t.Fatalf("%s: %v", line, err)
	}
	return string(b)
}

// quit ends the session and returns QUIT's reply.
func (s *session) quit() string {
	s.t.Helper()
	if err := s.tp.PrintfLine("QUIT"); err != nil {
		s.t.Fatal(err)
	}
	reply := s.read()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("Serve: %v", err)
		}
	case <-time.After(timeout):
		s.t.Fatal("Serve did not return after QUIT")
	}
	return reply
}

func TestEmulatorSession(t *testing.T) {
	l := newLab(t, "one", "two", "three")
	s, hello := login(t, l.open(gateway.Options{}))
	if !strings.HasPrefix(hello, "+OK Logged in; the Inbox has 3 messages (") {
		t.Fatalf("login: %q", hello)
	}
	s.cmd("STAT", "+OK 3 ", false)
	list := s.cmd("LIST", "+OK 3 messages", true)
	if n := strings.Count(list, "\n"); n != 3 {
		t.Errorf("LIST: %q", list)
	}
	uidls := s.cmd("UIDL", "+OK", true)
	// The subjects in the maildrop's order.
	var order []string
	for i := 1; i <= 3; i++ {
		top := s.cmd(fmt.Sprintf("TOP %d 0", i), "+OK", true)
		subject, _, _ := strings.Cut(strings.TrimPrefix(top, "Subject: "), "\n")
		order = append(order, subject)
		if strings.Contains(top, "dotted") {
			t.Errorf("TOP %d 0 gave body lines: %q", i, top)
		}
	}
	if got := s.cmd("RETR 2", "+OK", true); !strings.Contains(got, "\n.dotted line of "+order[1]+"\nend\n") {
		t.Errorf("RETR 2: %q", got)
	}
	s.cmd("DELE 1", "+OK", false)
	s.cmd("RSET", "+OK The Inbox has 3 messages", false)
	s.cmd("DELE 2", "+OK", false)
	s.cmd("STAT", "+OK 2 ", false)
	if got := s.quit(); got != "+OK Signing off; 1 messages deleted." {
		t.Errorf("QUIT: %q", got)
	}
	f := l.folders(t)
	kept := []string{order[0], order[2]}
	slices.Sort(kept)
	if !slices.Equal(f["INBOX"], kept) || !slices.Equal(f["Deleted Items"], []string{order[1]}) {
		t.Errorf("after DELE 2 and QUIT the folders are %q, want %q in INBOX and %q in Deleted Items", f, kept, order[1])
	}

	// Another session, on a mailbox opened afresh (a restart): the same messages have the same UIDLs.
	s, hello = login(t, l.open(gateway.Options{}))
	if !strings.HasPrefix(hello, "+OK Logged in; the Inbox has 2 messages") {
		t.Fatalf("second login: %q", hello)
	}
	again := s.cmd("UIDL", "+OK", true)
	first := strings.Split(strings.TrimSpace(uidls), "\n")
	second := strings.Split(strings.TrimSpace(again), "\n")
	wantSecond := []string{"1 " + strings.Fields(first[0])[1], "2 " + strings.Fields(first[2])[1]}
	if !slices.Equal(second, wantSecond) {
		t.Errorf("UIDL in the second session: %q, want %q (first session: %q)", second, wantSecond, first)
	}
	s.quit()
}

func TestEmulatorDeletePermanently(t *testing.T) {
	l := newLab(t, "keep", "gone")
	s, _ := login(t, l.open(gateway.Options{DeletePermanently: true}))
	for i := 1; i <= 2; i++ {
		if strings.HasPrefix(s.cmd(fmt.Sprintf("TOP %d 0", i), "+OK", true), "Subject: gone") {
			s.cmd(fmt.Sprintf("DELE %d", i), "+OK", false)
		}
	}
	s.quit()
	f := l.folders(t)
	if !slices.Equal(f["INBOX"], []string{"keep"}) || len(f["Deleted Items"]) != 0 {
		t.Errorf("after a permanent DELE the folders are %q, want keep alone", f)
	}
}

// Graph refuses the deletion at QUIT: the program is told, and every message is still there.
func TestEmulatorQuitDeleteFails(t *testing.T) {
	l := newLab(t, "one", "two")
	s, _ := login(t, l.open(gateway.Options{}))
	s.cmd("DELE 1", "+OK", false)
	s.cmd("DELE 2", "+OK", false)
	if err := l.srv.AddFault(mailoauthtest.Fault{Endpoint: "graph", Status: 403}); err != nil {
		t.Fatal(err)
	}
	if got := s.quit(); !strings.HasPrefix(got, "-ERR [SYS/TEMP] The marked messages may not all have been deleted: Microsoft Graph refused access") {
		t.Errorf("QUIT: %q", got)
	}
	l.srv.ClearFaults()
	if f := l.folders(t); !slices.Equal(f["INBOX"], []string{"one", "two"}) || len(f["Deleted Items"]) != 0 {
		t.Errorf("after a failed QUIT the folders are %q, want both messages in INBOX", f)
	}
}

// Graph refuses the listing at login: -ERR [SYS/TEMP], and Serve says so.
func TestEmulatorLoginRefused(t *testing.T) {
	l := newLab(t, "one")
	if err := l.srv.AddFault(mailoauthtest.Fault{Endpoint: "graph", Status: 403}); err != nil {
		t.Fatal(err)
	}
	s, hello := login(t, l.open(gateway.Options{}))
	if !strings.HasPrefix(hello, "-ERR [SYS/TEMP] The Inbox could not be read: Microsoft Graph refused access") {
		t.Errorf("login: %q", hello)
	}
	select {
	case err := <-s.done:
		if !errors.Is(err, pop3gw.ErrUnavailable) {
			t.Errorf("Serve: %v, want ErrUnavailable", err)
		}
	case <-time.After(timeout):
		t.Fatal("Serve did not return")
	}
}

// Graph throttles (429 with Retry-After) the first requests of a session: the session is slower,
// and the program sees nothing of it.
func TestEmulatorThrottled(t *testing.T) {
	l := newLab(t, "one", "two")
	if err := l.srv.AddFault(mailoauthtest.Fault{Endpoint: "graph", Status: 429, Times: 2}); err != nil {
		t.Fatal(err)
	}
	s, hello := login(t, l.open(gateway.Options{}))
	if !strings.HasPrefix(hello, "+OK Logged in; the Inbox has 2 messages") {
		t.Fatalf("login while throttled: %q", hello)
	}
	if err := l.srv.AddFault(mailoauthtest.Fault{Endpoint: "graph", Status: 429, Times: 1}); err != nil {
		t.Fatal(err)
	}
	if got := s.cmd("RETR 1", "+OK", true); !strings.Contains(got, "\nend\n") {
		t.Errorf("RETR 1 while throttled: %q", got)
	}
	s.cmd("DELE 2", "+OK", false)
	if err := l.srv.AddFault(mailoauthtest.Fault{Endpoint: "graph", Status: 429, Times: 1}); err != nil {
		t.Fatal(err)
	}
	if got := s.quit(); got != "+OK Signing off; 1 messages deleted." {
		t.Errorf("QUIT while throttled: %q", got)
	}
	if f := l.folders(t); len(f["INBOX"]) != 1 || len(f["Deleted Items"]) != 1 {
		t.Errorf("after QUIT the folders are %q", f)
	}
}
