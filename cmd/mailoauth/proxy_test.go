package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/passhash"
)

func TestProxyCheckAndHashPassword(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	ctx := context.Background()

	code, out, errs := runCLI(t, ctx, "--config", cfg, "proxy", "--check")
	if code != exitOK || !strings.Contains(out, "the proxy configuration is valid: imap on 127.0.0.1:") || !strings.Contains(out, "1 user(s)") {
		t.Fatalf("proxy --check on the emulator's config: exit %d\n%s%s", code, out, errs)
	}

	code, out, errs = runCLIStdin(t, "s3cret pass\n", "proxy", "hash-password")
	h := strings.TrimSpace(out)
	if code != exitOK || !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || errs != "" {
		t.Fatalf("hash-password: exit %d %q %q", code, out, errs)
	}
	if got, want, err := passhash.Key(h, "s3cret pass"); err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
		t.Fatalf("the printed hash does not verify the password: %v", err)
	}
	if code, _, errs := runCLIStdin(t, "", "proxy", "hash-password"); code != exitUsage || !strings.Contains(errs, "no password on standard input") {
		t.Fatalf("hash-password without input: exit %d %q", code, errs)
	}

	// The systemd unit's command lines are ones this CLI accepts.
	unit, err := os.ReadFile(filepath.Join("..", "..", "contrib", "systemd", "mailoauth-proxy.service"))
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^ExecStart(?:Pre)?=\S+ (.*)$`).FindAllStringSubmatch(string(unit), -1)
	if len(lines) != 2 {
		t.Fatalf("the unit has %d ExecStart/ExecStartPre lines, want 2", len(lines))
	}
	for _, m := range lines {
		argv := strings.Fields(strings.ReplaceAll(m[1], "/etc/mailoauth/config.toml", cfg))
		if !strings.Contains(m[1], "--check") {
			argv = append(argv, "--check")
		}
		if code, _, errs := runCLI(t, ctx, argv...); code != exitOK {
			t.Fatalf("the unit's %q fails: %s", m[0], errs)
		}
	}

	// A configuration the proxy cannot serve is a usage error that says what to fix.
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"no proxy section", "cut", "has no [[proxy.listener]]"},
		{"bad hash", "hash", "password_hash"},
		{"certificate missing", "tls", "tls_cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := string(base)
			switch tc.edit {
			case "cut":
				text = text[:strings.Index(text, "[proxy]")]
			case "hash":
				text = regexp.MustCompile(`password_hash = '[^']*'`).ReplaceAllString(text, `password_hash = '$$argon2id$$v=19$$m=0,t=1,p=1$$AAAA$$AAAA'`)
			case "tls":
				text = strings.Replace(text, "local_tls = 'none'", "local_tls = 'implicit'\ntls_cert = 'missing.pem'\ntls_key = 'missing-key.pem'", 1)
			}
			p := filepath.Join(filepath.Dir(cfg), "edited.toml")
			if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, errs := runCLI(t, ctx, "--config", p, "proxy", "--check")
			if code != exitUsage || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, want 2 with %q: %s", code, tc.want, errs)
			}
		})
	}
}

// TestProxyProcessSignals runs the proxy as its own process, as systemd does: SIGHUP applies a new
// user while a session goes on, and a reload that fails changes nothing and says why; SIGTERM
// drains and exits 0.
func TestProxyProcessSignals(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	bin := filepath.Join(t.TempDir(), "mailoauth")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--config", cfg, "proxy", "--drain", "2s")
	var logs syncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if strings.Contains(logs.String(), what) {
				return
			}
		}
		t.Fatalf("the proxy never logged %q:\n%s", what, logs.String())
	}
	waitFor("protocol=imap addr=")
	text, _ := os.ReadFile(cfg)
	addr := regexp.MustCompile(`protocol = 'imap'\nlisten = '([^']+)'`).FindStringSubmatch(string(text))[1]

	login := func(user, password string) (net.Conn, *bufio.Reader, string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		r.ReadString('\n')
		fmt.Fprintf(c, "a LOGIN %q %q\r\n", user, password)
		l, _ := r.ReadString('\n')
		return c, r, l
	}
	open, r, got := login("alice@contoso.test", emulator.ProxyPassword)
	if !strings.HasPrefix(got, "a OK") {
		t.Fatalf("login through the proxy process: %q\n%s", got, logs.String())
	}
	if _, _, got := login("carol", "carol-pw"); !strings.HasPrefix(got, "a NO") {
		t.Fatalf("an unknown user logged in: %q", got)
	}

	h, _ := passhash.Hash("carol-pw")
	extra := fmt.Sprintf("\n[proxy.users.carol]\naccount = 'daemon-bob'\npassword_hash = '%s'\n", h)
	if err := os.WriteFile(cfg, append(text, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("configuration reloaded")
	if c, _, got := login("carol", "carol-pw"); !strings.HasPrefix(got, "a OK") {
		t.Fatalf("the user added by the reload cannot log in: %q\n%s", got, logs.String())
	} else {
		c.Close()
	}
	fmt.Fprint(open, "b NOOP\r\n")
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "b OK") {
		t.Fatalf("the session open before the reload broke: %q %v", l, err)
	}

	// A reload that cannot bind a new listener changes nothing (carol, whom it removes, still logs
	// in), and the log says which address failed and why.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := fmt.Sprintf("\n[[proxy.listener]]\nprotocol = 'pop'\nlisten = '%s'\nlocal_tls = 'none'\n", taken.Addr())
	if err := os.WriteFile(cfg, append(text, bad...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("reload failed")
	if line := regexp.MustCompile(`.*reload failed.*`).FindString(logs.String()); !strings.Contains(line, taken.Addr().String()) || !strings.Contains(line, "address already in use") {
		t.Fatalf("the failed reload's log line does not say which address failed and why: %s", line)
	}
	if c, _, got := login("carol", "carol-pw"); !strings.HasPrefix(got, "a OK") {
		t.Fatalf("a failed reload removed a user: %q\n%s", got, logs.String())
	} else {
		c.Close()
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor("stopping: draining sessions")
	fmt.Fprint(open, "c NOOP\r\n")
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "c OK") {
		t.Fatalf("the open session stopped working during the drain: %q %v", l, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the proxy exited with %v after SIGTERM\n%s", err, logs.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the drain took %v with --drain 2s", d)
	}
	if _, err := io.ReadAll(r); err != nil {
		t.Fatalf("the session was not closed cleanly at the end of the drain: %v", err)
	}
	if strings.Contains(logs.String(), emulator.ProxyPassword) || strings.Contains(logs.String(), "carol-pw") {
		t.Fatal("a password reached the proxy's log")
	}
}

// TestProxyDrainHealthz: after SIGTERM, while a session drains, the admin endpoint still answers —
// /healthz with 503 "draining", so a load balancer takes the proxy out instead of finding the port
// closed — and it stops only when the last session has ended.
func TestProxyDrainHealthz(t *testing.T) {
	e, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(text), "[proxy]\n", "[proxy]\nadmin = '"+admin+"'\n", 1)
	if edited == string(text) {
		t.Fatal("the emulator's configuration has no [proxy] section")
	}
	if err := os.WriteFile(cfg, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background()) // cancel is what SIGTERM does in main
	var out, logs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", cfg, "proxy", "--drain", "60s"}, strings.NewReader(""), &out, &logs)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), what); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the proxy never logged %q:\n%s", what, logs.String())
			}
		}
	}
	waitFor("admin endpoint listening")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	healthz := func() (int, string, error) {
		r, err := client.Get("http://" + admin + "/healthz")
		if err != nil {
			return 0, "", err
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		return r.StatusCode, string(b), err
	}
	if code, body, err := healthz(); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz while serving: %d %q %v", code, body, err)
	}

	c, err := net.Dial("tcp", e.ProxyAddrs["imap"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	exchange := func(cmd, tag string) string {
		t.Helper()
		fmt.Fprintf(c, "%s\r\n", cmd)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v (got %q)", cmd, err, l)
			}
			if strings.HasPrefix(l, tag+" ") {
				return l
			}
		}
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting: %q %v", l, err)
	}
	if l := exchange(fmt.Sprintf("a LOGIN %q %q", world.Alice, emulator.ProxyPassword), "a"); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("login: %q\n%s", l, logs.String())
	}

	cancel()
	waitFor("shutting down")
	if code, body, err := healthz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("/healthz while draining: %d %q %v, want 503 saying draining", code, body, err)
	}
	if l := exchange("b NOOP", "b"); !strings.HasPrefix(l, "b OK") {
		t.Fatalf("the session stopped working during the drain: %q", l)
	}
	if code, _, err := healthz(); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz later in the drain: %d %v, want 503", code, err)
	}
	exchange("z LOGOUT", "z")
	select {
	case code := <-done:
		done <- code // for the cleanup
		if code != exitOK {
			t.Fatalf("the proxy exited %d after its last session ended\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the proxy did not stop after its last session ended\n%s", logs.String())
	}
	if _, _, err := healthz(); err == nil {
		t.Fatal("the admin endpoint still answers after the proxy stopped")
	}
}
