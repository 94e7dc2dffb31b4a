package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
)

// TestEmulatorBannerNamesGraphAndProxyPorts: the start-up banner gives every address a user needs
// — Graph's URL, the ports the written [proxy] section listens on, the control API and the web page
// — as absolute, pasteable
// values that agree with the config the emulator wrote.
func TestEmulatorBannerNamesGraphAndProxyPorts(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb syncBuffer
	// A fixed port for a listener via Graph is the one written and printed.
	_, fixed, _ := net.SplitHostPort(freeAddr(t))
	go func() {
		done <- run(ctx, []string{"emulator", "--data", dir, "--ports", "gateway-imap=" + fixed}, strings.NewReader(""), &out, &errb)
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("emulator exited %d after cancel; stderr %s", code, errb.String())
		}
	}()
	// The "try" line is the banner's last.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "  try "); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no banner; stdout %q stderr %q", out.String(), errb.String())
		}
	}
	banner := out.String()
	cfgPath := filepath.Join(dir, "mailoauth.toml")
	f, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	field := func(label string) string {
		t.Helper()
		for _, l := range strings.Split(banner, "\n") {
			if rest, ok := strings.CutPrefix(l, "  "+label+" "); ok {
				return strings.Fields(rest)[0]
			}
		}
		t.Fatalf("banner has no %q line:\n%s", label, banner)
		return ""
	}
	if got, want := field("Graph"), f.Accounts["daemon"].Graph; want == "" || got != want {
		t.Errorf("banner's Graph %q, config's %q", got, want)
	}
	if f.Proxy == nil || len(f.Proxy.Listeners) != 6 {
		t.Fatalf("written config has not six proxy listeners (three to Exchange, three via Graph): %+v", f.Proxy)
	}
	labels := map[string]string{"imap": "proxy IMAP", "pop": "proxy POP3", "smtp": "proxy SMTP",
		"imap graph": "gateway IMAP", "pop graph": "gateway POP3", "smtp graph": "gateway SMTP"}
	seen := map[string]string{}
	for _, l := range f.Proxy.Listeners {
		label := labels[strings.TrimSpace(l.Protocol+" "+l.Via)]
		if got := field(label); got != l.Listen {
			t.Errorf("banner's %s %q, config's listener %q", label, got, l.Listen)
		}
		if prev := seen[l.Listen]; prev != "" {
			t.Errorf("%s and %s both listen on %s", prev, label, l.Listen)
		}
		seen[l.Listen] = label
	}
	if got, want := field("gateway IMAP"), "127.0.0.1:"+fixed; got != want {
		t.Errorf("banner's gateway IMAP %q, want the fixed %q", got, want)
	}
	if got := field("config"); got != cfgPath {
		t.Errorf("banner's config %q, want the absolute %q", got, cfgPath)
	}
	// The control API's URL is the one written for `emulator ctl`, and the web page answers there.
	written, err := os.ReadFile(filepath.Join(dir, "control-url"))
	if err != nil {
		t.Fatal(err)
	}
	if got := field("control API"); got != strings.TrimSpace(string(written)) {
		t.Errorf("banner's control API %q, written control-url %q", got, written)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(field("web page"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the banner's web page answers %s", resp.Status)
	}
	// Without --log-level the emulator logs at info, so its events are in its log: a refused token
	// request is logged before its answer is sent.
	resp, err = hc.PostForm(field("identity platform")+"/contoso/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {"00000000-0000-4000-8000-000000000000"}, "client_secret": {"x"}, "scope": {"https://graph.microsoft.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(errb.String(), "event: token.refused") {
		t.Errorf("the emulator's log has no event line:\n%s", errb.String())
	}
}
