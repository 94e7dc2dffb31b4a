package proxy

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/sasl"
)

// A token sasl refuses to encode (here one with XOAUTH2's separator in it) is never sent, in any
// protocol: the login fails with sasl's reason instead of presenting an empty or ambiguous response.
func TestUpstreamNeverSendsAnUnencodableToken(t *testing.T) {
	for _, tc := range []struct {
		name  string
		up    upstreamProtocol
		serve string // what the server answers to the AUTH command (a request for the credentials)
	}{
		{"imap", imapUp{}, ""},
		{"pop3", popUp{}, "+ \r\n"},
		{"smtp", smtpUp{}, "334 \r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			defer server.Close()
			sent := make(chan string, 1)
			go func() {
				buf := make([]byte, 4096)
				var got strings.Builder
				for {
					n, err := server.Read(buf)
					got.Write(buf[:n])
					if err != nil {
						sent <- got.String()
						return
					}
					if tc.serve != "" && strings.HasSuffix(got.String(), "\r\n") && strings.Count(got.String(), "\r\n") == 1 {
						if _, err := server.Write([]byte(tc.serve)); err != nil {
							sent <- got.String()
							return
						}
					}
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = client.SetDeadline(time.Now().Add(20 * time.Second)) // the old code waited for ever
			u := &upstreamConn{conn: client, addr: "mail.test:993", ctx: ctx}
			u.newReader()
			_, err := tc.up.authenticate(u, sasl.XOAuth2, "alice@contoso.test", "good\x01user=bob@contoso.test")
			if !errors.Is(err, sasl.ErrInvalid) {
				t.Fatalf("authenticate with an unencodable token: err = %v, want sasl.ErrInvalid", err)
			}
			client.Close()
			if got := <-sent; strings.Contains(got, "user=") || strings.Contains(got, "dXNlcj1") || strings.Count(got, "\r\n") > 1 {
				t.Fatalf("the server received %q: a credential was sent", got)
			}
		})
	}
}
