package pop3

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/mailerr"
	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/sasl"
	"github.com/mailoauth/mailoauth/trace"
)

// script plays a POP3 server: for each expected client line, the reply to send.
func script(t *testing.T, conn net.Conn, steps [][2]string) {
	t.Helper()
	r := bufio.NewReader(conn)
	for _, s := range steps {
		if s[0] != "" {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Errorf("server: reading %q: %v", s[0], err)
				return
			}
			if got := strings.TrimRight(line, "\r\n"); got != s[0] && !(strings.HasSuffix(s[0], "*") && strings.HasPrefix(got, strings.TrimSuffix(s[0], "*"))) {
				t.Errorf("server: got %q, want %q", got, s[0])
				return
			}
		}
		if _, err := conn.Write([]byte(s[1])); err != nil {
			return
		}
	}
}

func pipe(t *testing.T, steps [][2]string) *Client {
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	go script(t, c2, steps)
	return newClient(c1)
}

const tok = "eyJ0eXAiOiJKV1QifQ.e30.sig"

func TestTwoStepXOAuth2AndMailbox(t *testing.T) {
	msg, err := sasl.EncodeXOAuth2("alice@contoso.test", tok)
	if err != nil {
		t.Fatal(err)
	}
	ir := base64.StdEncoding.EncodeToString(msg)
	c := pipe(t, [][2]string{
		{"CAPA", "+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\nUSER\r\n.\r\n"},
		{"AUTH XOAUTH2", "+ \r\n"},
		{ir, "+OK User successfully authenticated.\r\n"},
		{"STAT", "+OK 2 300\r\n"},
		{"LIST", "+OK\r\n1 100\r\n2 200\r\n.\r\n"},
		{"UIDL", "+OK\r\n1 AAA\r\n2 BBB\r\n.\r\n"},
		{"RETR 2", "+OK\r\nSubject: x\r\n\r\n..leading dot\r\nend\r\n.\r\n"},
		{"TOP 2 0", "+OK\r\nSubject: x\r\n\r\n.\r\n"},
	})
	if err := c.capa(); err != nil || !c.HasSASL("xoauth2") {
		t.Fatalf("capa: %v %v", err, c.caps)
	}
	if err := c.auth(sasl.XOAuth2, Options{Username: "alice@contoso.test"}, &token.Token{AccessToken: tok}); err != nil {
		t.Fatal(err)
	}
	if n, size, err := c.Stat(); n != 2 || size != 300 || err != nil {
		t.Fatalf("stat %d %d %v", n, size, err)
	}
	msgs, err := c.List()
	if err != nil || len(msgs) != 2 || msgs[1].UID != "BBB" || msgs[1].Size != 200 {
		t.Fatalf("list %+v %v", msgs, err)
	}
	body, err := c.Retr(2)
	if err != nil || string(body) != "Subject: x\r\n\r\n.leading dot\r\nend\r\n" {
		t.Fatalf("retr %q %v", body, err)
	}
	if !c.HasCapability("top") {
		t.Fatal("CAPA listed TOP")
	}
	if head, err := c.Top(2, 0); err != nil || string(head) != "Subject: x\r\n\r\n" {
		t.Fatalf("top %q %v", head, err)
	}
}

func TestErrorChallengeAnsweredAndRefusalKept(t *testing.T) {
	challenge := base64.StdEncoding.EncodeToString([]byte(`{"status":"invalid_token","scope":"mail"}`))
	c := pipe(t, [][2]string{
		{"AUTH OAUTHBEARER", "+ \r\n"},
		{"*", "+ " + challenge + "\r\n"},
		{"AQ==", "-ERR [AUTH] Authentication failed.\r\n"},
	})
	err := c.auth(sasl.OAuthBearer, Options{Username: "alice", Addr: "h:995"}, &token.Token{AccessToken: tok})
	var pe *mailerr.Error
	if !errors.As(err, &pe) || pe.Server != "-ERR [AUTH] Authentication failed." || pe.Challenge == nil || pe.Challenge.Status != "invalid_token" {
		t.Fatalf("got %#v", err)
	}
	if strings.Contains(err.Error(), tok) {
		t.Fatal("the error quotes the token")
	}
}

func TestExchangeRefusalText(t *testing.T) {
	c := pipe(t, [][2]string{
		{"AUTH XOAUTH2", "+ \r\n"},
		{"*", "-ERR Authentication failure: unknown user name or bad password.\r\n"},
	})
	err := c.auth(sasl.XOAuth2, Options{Username: "alice"}, &token.Token{AccessToken: tok})
	var pe *mailerr.Error
	if !errors.As(err, &pe) || pe.Server != "-ERR Authentication failure: unknown user name or bad password." {
		t.Fatalf("got %v", err)
	}
	if want := "POP3 AUTH XOAUTH2 refused: server said -ERR Authentication failure: unknown user name or bad password."; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

func TestHostileServerIsBounded(t *testing.T) {
	c := pipe(t, [][2]string{{"STAT", "+OK " + strings.Repeat("9", 4096) + "\r\n"}})
	if _, _, err := c.Stat(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("an oversized status line: %v", err)
	}
	c = pipe(t, [][2]string{{"STAT", "HTTP/1.1 400 Bad Request\r\n"}})
	if _, _, err := c.Stat(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("not POP3: %v", err)
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"+OK", "+OK 2 300", "-ERR Authentication failure: unknown user name or bad password.", "+ ", "+ eyJ9", "-ERR", "+OKAY", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ok, cont, text, err := parseReply(line)
		if err == nil && !strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "-ERR") {
			t.Fatalf("accepted %q", line)
		}
		if cont && !ok {
			t.Fatal("a continuation that is not ok")
		}
		if len(text) > len(line) {
			t.Fatal("text longer than the line")
		}
	})
}

func FuzzMultiline(f *testing.F) {
	f.Add([]byte("+OK\r\nTOP\r\nSASL XOAUTH2\r\n.\r\n"))
	f.Add([]byte("+OK\r\n..\r\n.\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, c2 := net.Pipe()
		defer c1.Close()
		go func() { c2.Write(data); c2.Close() }()
		go func() { bufio.NewReader(c2).ReadString('\n') }()
		c := newClient(c1)
		_ = c.capa() // must return, never panic, whatever the server sends
	})
}

func FuzzListing(f *testing.F) {
	f.Add([]byte("+OK\r\n1 10\r\n \r\n2 20\r\n.\r\n+OK\r\n1 A\r\n.\r\n"))
	f.Add([]byte("+OK\r\nx y z\r\n.\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, c2 := net.Pipe()
		defer c1.Close()
		go func() { bufio.NewReader(c2).ReadString('\n') }()
		go func() { c2.Write(data); c2.Close() }()
		_, _ = newClient(c1).List() // a hostile listing must give an error, never a panic
	})
}

func TestBlankLineInListing(t *testing.T) {
	c := pipe(t, [][2]string{{"LIST", "+OK\r\n1 10\r\n \r\n2 20\r\n.\r\n"}, {"UIDL", "-ERR no\r\n"}})
	msgs, err := c.List()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("%+v %v", msgs, err)
	}
}

// TestNilTokensIsAnError: options without a token source are an error naming the field, returned
// before anything is resolved or dialled, not a panic after connecting.
func TestNilTokensIsAnError(t *testing.T) {
	var rec trace.Recorder
	_, err := Dial(context.Background(), Options{Addr: "127.0.0.1:1", Username: "alice", Trace: rec.Func()})
	if err == nil || !strings.HasPrefix(err.Error(), "pop3.Options.Tokens is nil: ") {
		t.Fatalf("got %v, want an error naming pop3.Options.Tokens", err)
	}
	if len(rec.Steps) != 0 {
		t.Errorf("steps were taken before the error: %+v", rec.Steps)
	}
}
