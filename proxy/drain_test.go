package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
)

// TestAdminAnswersThroughDrain: the admin endpoint ServeAdmin starts answers /healthz with 503
// "draining" (and still serves /metrics) while Shutdown waits for a session, and stops only once
// that session has ended.
func TestAdminAnswersThroughDrain(t *testing.T) {
	l := newLab(t, labOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.srv.ServeAdmin(ln)
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (int, string, error) {
		r, err := client.Get(base + path)
		if err != nil {
			return 0, "", err
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		return r.StatusCode, string(b), err
	}
	if code, body, err := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz while serving: %d %q %v", code, body, err)
	}
	c := l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", aliceUser, alicePassword)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.srv.Shutdown(ctx) }()
	l.waitLog("shutting down", "sessions=1")
	if code, body, err := get("/healthz"); code != http.StatusServiceUnavailable || body != "draining\n" {
		t.Fatalf("/healthz while draining: %d %q %v, want 503 \"draining\"", code, body, err)
	}
	c.check(c.cmd("b NOOP", "b "), "b OK")
	if code, body, err := get("/metrics"); code != http.StatusOK || !strings.Contains(body, `mailoauth_proxy_sessions_active{protocol="imap"} 1`) {
		t.Fatalf("/metrics while draining: %d %v\n%s", code, err, body)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a session was open", err)
	default:
	}
	c.cmd("z LOGOUT", "z ")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown after the last session ended: %v", err)
	}
	if _, _, err := get("/healthz"); err == nil {
		t.Fatal("the admin endpoint still answers after Shutdown returned")
	}
}
