package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// appendConfig adds text to the configuration file at path.
func appendConfig(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + text); err != nil {
		t.Fatal(err)
	}
}

// startCLI runs the CLI until the test ends (cancel is what SIGTERM does in main) and waits for
// its log to say want; it returns the log so far.
func startCLI(t *testing.T, want string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, strings.NewReader(""), &out, &logs) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), want); time.Sleep(10 * time.Millisecond) {
		select {
		case code := <-done:
			t.Fatalf("mailoauth %v exited %d before logging %q:\n%s", args, code, want, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("never logged %q:\n%s", want, logs.String())
		}
	}
	return logs.String()
}

// freeAddr is a loopback address with a port free now, for a configuration file (which takes no
// port 0).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	r, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// TestConsoleCommand: mailoauth console needs a [console] section (exit 2 without), refuses an
// address that is not loopback without TLS (exit 2), and serves the accounts.
func TestConsoleCommand(t *testing.T) {
	_, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	code, _, stderr := runCLI(t, context.Background(), "--config", cfg, "console")
	if code != 2 || !strings.Contains(stderr, "has no [console] section") {
		t.Fatalf("without [console]: exit %d\n%s", code, stderr)
	}
	appendConfig(t, cfg, "[console]\nauth = \"none\"\nlisten = \""+freeAddr(t)+"\"\n")
	code, _, stderr = runCLI(t, context.Background(), "--config", cfg, "console", "--listen", "0.0.0.0:0")
	if code != 2 || !strings.Contains(stderr, "not on a loopback address and has no TLS") || !strings.Contains(stderr, "tls_cert") {
		t.Fatalf("on 0.0.0.0 without TLS: exit %d\n%s", code, stderr)
	}
	logs := startCLI(t, "console listening", "--config", cfg, "console")
	m := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(logs)
	if m == nil {
		t.Fatalf("no URL in the log:\n%s", logs)
	}
	if code, body := get(t, m[1]); code != http.StatusOK || !strings.Contains(body, `id="account-alice-device"`) {
		t.Fatalf("GET %s: %d\n%s", m[1], code, body)
	}
}

// TestProxyServesConsole: with a [console] section the proxy's admin address serves the console,
// with the proxy's listeners, beside /healthz.
func TestProxyServesConsole(t *testing.T) {
	e, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	admin := freeAddr(t)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(text), "[proxy]\n", "[proxy]\nadmin = '"+admin+"'\n", 1)
	if err := os.WriteFile(cfg, []byte(edited+"\n[console]\nauth = \"none\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startCLI(t, "admin endpoint listening", "--config", cfg, "proxy")
	if code, body := get(t, "http://"+admin+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	code, body := get(t, "http://"+admin+"/")
	if code != http.StatusOK || !strings.Contains(body, "Listeners") || !strings.Contains(body, e.ProxyAddrs["imap"]) {
		t.Fatalf("console on the admin address: %d\n%s", code, body)
	}
}
