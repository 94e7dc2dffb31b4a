package main

// Issue 8 item 5 and SPEC §11: no token, secret, password or code in any output. TestNoSecretInOutput
// runs the CLI at --log-level debug through every flow and every command that handles a secret, the
// proxy with sessions in the three protocols, and the emulator with its debug log captured; then it
// collects every secret that was used or issued and searches all the output for each. The one place a
// secret may appear is `token`'s standard output (the access token: what the command is for).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/loadtest"
)

// capture is one piece of output and where it came from.
type capture struct {
	label string
	text  string
	// tokenOK: the access tokens the emulator issued may appear here (`token`'s standard output).
	tokenOK bool
}

func TestNoSecretInOutput(t *testing.T) {
	var emuLog syncBuffer
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	e, basePath := startEmulator(t, emulator.Options{AutoApprove: world.Alice, Log: slog.New(slog.NewTextHandler(&emuLog, debug))})
	dir := filepath.Dir(basePath)
	alicePassword := e.World().TenantForUPN(world.Alice).User(world.Alice).Password

	// A refresh token obtained elsewhere (another tool's password grant), for the import flow.
	importedRT := passwordGrantRefreshToken(t, e, alicePassword)
	writeFile(t, filepath.Join(dir, "imported-rt.txt"), importedRT+"\n")
	writeFile(t, filepath.Join(dir, "ropc-pass.txt"), alicePassword+"\n")

	// Every flow: the default world's accounts (client secret, PFX with its password, interactive,
	// device code) and three more (PEM certificate, password, refresh-token import); each is also a
	// proxy user "<account>@proxy.test" with the emulator's proxy password.
	f, err := e.Config()
	if err != nil {
		t.Fatal(err)
	}
	pem := *f.Accounts["daemon"]
	pem.ClientSecretFile, pem.Certificate = "", "daemon-cert.pem"
	ropc := *f.Accounts["alice"]
	ropc.Flow, ropc.PasswordFile = config.FlowPassword, "ropc-pass.txt"
	rt := *f.Accounts["alice"]
	rt.Flow, rt.RefreshTokenFile = config.FlowRefreshToken, "imported-rt.txt"
	f.Accounts["daemon-pem"], f.Accounts["alice-ropc"], f.Accounts["alice-rt"] = &pem, &ropc, &rt
	flows := []string{"daemon", "daemon-pem", "daemon-cert", "alice", "alice-device", "alice-ropc", "alice-rt"}
	var hash string
	for _, u := range f.Proxy.Users {
		hash = u.PasswordHash
	}
	for _, name := range flows {
		f.Proxy.Users[name+"@proxy.test"] = &config.ProxyUser{Account: name, PasswordHash: hash}
	}
	b, err := toml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "secrets.toml")
	writeFile(t, cfg, string(b))

	var captured []capture
	ctx := context.Background()
	cli := func(stdin string, args ...string) (int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		argv := append([]string{"--config", cfg, "--log-level", "debug"}, args...)
		code := run(ctx, argv, strings.NewReader(stdin), &out, &errb)
		label := strings.Join(args, " ")
		captured = append(captured,
			capture{label: label + " (stdout)", text: out.String(), tokenOK: args[0] == "token"},
			capture{label: label + " (stderr)", text: errb.String()})
		return code, out.String()
	}
	must := func(args ...string) string {
		t.Helper()
		code, out := cli("", args...)
		if code != exitOK {
			t.Errorf("%s: exit %d\n%s", strings.Join(args, " "), code, captured[len(captured)-1].text)
		}
		return out
	}

	// Logins: interactive with --no-browser (the test is the browser), device code (auto-approved),
	// password, refresh-token import. The app-only accounts need none.
	loginInteractive(t, e, cfg, &captured)
	must("login", "alice-device")
	must("login", "alice-ropc")
	must("login", "alice-rt")

	must("send", "daemon", "--to", world.Alice, "--subject", "secrets test", "--body", "hello", "--via", "smtp")
	for _, acc := range flows {
		must("token", acc)
		must("token", acc, "--json")
		must("token", acc, "--resource", "graph")
		must("check", acc, "--protocol", "all")
		must("doctor", acc, "--protocol", "all")
		must("setup", acc)
		for _, via := range []string{"smtp", "graph"} {
			must("send", acc, "--to", world.Alice, "--subject", "from "+acc, "--body", "hi", "--via", via)
		}
		if code, _ := cli("From: "+world.Alice+"\nTo: "+world.Alice+"\nSubject: sendmail\n\nhi\n", "sendmail", "-t", "--account", acc); code != exitOK {
			t.Errorf("sendmail --account %s: exit %d", acc, code)
		}
		for _, via := range []string{"imap", "pop", "graph"} {
			out := must("--json", "mail", "list", acc, "--via", via, "--limit", "1")
			var l []listed
			if err := json.Unmarshal([]byte(out), &l); err != nil || len(l) == 0 {
				t.Errorf("mail list %s --via %s: %v %q", acc, via, err, out)
				continue
			}
			must("mail", "get", acc, l[0].ID, "--via", via)
		}
	}
	must("accounts")
	must("--json", "accounts")

	// The proxy: --check, hash-password, and a session per flow and protocol (plus a wrong password
	// per protocol) against `mailoauth proxy` at debug level, run in-process until cancelled.
	must("proxy", "--check")
	const hashed = "Hash-Me-Pa55word-7c1d"
	if code, _ := cli(hashed+"\n", "proxy", "hash-password"); code != exitOK {
		t.Errorf("hash-password: exit %d", code)
	}
	const wrongProxyPassword = "Wr0ng-Pr0xy-Pa55-93af"
	proxySessions(t, e, cfg, flows, wrongProxyPassword, &captured)

	for _, acc := range flows {
		must("logout", acc)
	}
	captured = append(captured, capture{label: "emulator log", text: emuLog.String()})

	// Every secret: the apps' credentials, the store passphrase, the users' passwords, the proxy's
	// passwords, every token and code the emulator issued.
	secrets := map[string]string{} // value → what it is
	for name, c := range e.Credentials {
		secrets[c.Secret] = name + " client secret"
		if c.PFXPassword != "" {
			secrets[c.PFXPassword] = name + " PFX password"
		}
		if key := privateKeyLine(c.CertPEM); key != "" {
			secrets[key] = name + " private key (a line of its PEM)"
		}
	}
	pass, err := os.ReadFile(filepath.Join(dir, "store-passphrase.txt"))
	if err != nil {
		t.Fatal(err)
	}
	secrets[strings.TrimSpace(string(pass))] = "store passphrase"
	for _, tn := range e.World().Tenants {
		for _, u := range tn.Users {
			if u.Password != "" {
				secrets[u.Password] = u.UPN + "'s password"
			}
		}
	}
	secrets[emulator.ProxyPassword] = "proxy password"
	secrets[wrongProxyPassword] = "a wrong proxy password"
	secrets[hashed] = "the password given to hash-password"
	accessTokens := map[string]bool{}
	minted := e.Identity.Minted()
	for i, v := range minted {
		what := "token or code #" + itoa(i) + " issued by the emulator"
		if parts := strings.Split(v, "."); len(parts) == 3 { // a JWT: also its signature alone
			if isAccessToken(parts[1]) { // not an ID token
				accessTokens[v], accessTokens[parts[2]] = true, true
			}
			secrets[parts[2]] = what + " (its signature)"
		} else if len(v) > 40 {
			secrets[v[len(v)/2-16:len(v)/2+16]] = what + " (its middle)"
		}
		secrets[v] = what
	}
	if len(minted) < 20 || !strings.HasPrefix(importedRT, "0.A") {
		t.Fatalf("only %d tokens and codes recorded by the emulator", len(minted))
	}

	// The search itself is tested first: a refresh token in clear and an access token inside a
	// base64 XOAUTH2 payload, planted in an output, must both be found.
	var anAccessToken string
	for v := range accessTokens {
		if strings.Count(v, ".") == 2 {
			anAccessToken = v
		}
	}
	planted := []capture{{label: "planted", text: "rt=" + importedRT + " sasl=" +
		base64.StdEncoding.EncodeToString([]byte("user="+world.Alice+"\x01auth=Bearer "+anAccessToken+"\x01\x01"))}}
	if leaks, _ := searchSecrets(planted, secrets, accessTokens); len(leaks) < 3 { // rt, its middle, the token (+ signature)
		t.Fatalf("the search misses planted secrets: %q", leaks)
	}

	leaks, tokenPrinted := searchSecrets(captured, secrets, accessTokens)
	for _, l := range leaks {
		t.Error(l)
	}
	if !tokenPrinted {
		t.Error("no access token found in `token`'s output: the search finds nothing")
	}
	t.Logf("searched %d captured outputs (%d KB) for %d secrets (%d tokens and codes issued)",
		len(captured), totalLen(captured)/1000, len(secrets), len(minted))
}

// searchSecrets searches every capture, and the base64 blobs in it decoded, for every secret. An
// access token (or its signature) in a capture marked tokenOK is allowed, and reported as printed.
func searchSecrets(captured []capture, secrets map[string]string, accessTokens map[string]bool) (leaks []string, tokenPrinted bool) {
	for _, c := range captured {
		texts := append([]string{c.text}, decodedBlobs(c.text)...) // SASL payloads, basic auth, JWT segments
		for _, text := range texts {
			for v, what := range secrets {
				if !strings.Contains(text, v) {
					continue
				}
				if c.tokenOK && accessTokens[v] {
					tokenPrinted = true
					continue
				}
				leaks = append(leaks, c.label+" contains "+what+":\n"+excerpt(text, v))
			}
		}
	}
	return leaks, tokenPrinted
}

// isAccessToken says whether a JWT's payload segment is an access token's (it has scp or roles).
func isAccessToken(payload string) bool {
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var claims map[string]any
	if err != nil || json.Unmarshal(b, &claims) != nil {
		return false
	}
	return claims["scp"] != nil || claims["roles"] != nil
}

// loginInteractive runs `login alice --no-browser` and plays the browser: it follows the URL printed
// on stderr (the emulator auto-approves and redirects to the CLI's loopback listener).
func loginInteractive(t *testing.T, e *emulator.Emulator, cfg string, captured *[]capture) {
	t.Helper()
	var out, errs syncBuffer
	if code := loginNoBrowser(t, e, []string{"--config", cfg, "--log-level", "debug"}, &out, &errs); code != exitOK {
		t.Errorf("login alice --no-browser: exit %d\n%s", code, errs.String())
	}
	*captured = append(*captured, capture{label: "login alice --no-browser (stdout)", text: out.String()},
		capture{label: "login alice --no-browser (stderr)", text: errs.String()})
}

// proxySessions runs `mailoauth proxy` and, through each of its listeners, logs in as every flow's
// proxy user (working, then logging out) and once with a wrong password.
func proxySessions(t *testing.T, e *emulator.Emulator, cfg string, flows []string, wrong string, captured *[]capture) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", cfg, "--log-level", "debug", "proxy", "--drain", "1s"}, strings.NewReader(""), &out, &logs)
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("proxy: exit %d\n%s", code, logs.String())
		}
		*captured = append(*captured, capture{label: "proxy (stdout)", text: out.String()}, capture{label: "proxy (stderr, its log)", text: logs.String()})
	}()
	for deadline := time.Now().Add(30 * time.Second); strings.Count(logs.String(), " addr=") < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy did not start:\n%s", logs.String())
		}
	}
	for _, proto := range []string{loadtest.IMAP, loadtest.POP, loadtest.SMTP} {
		addr := e.ProxyAddrs[proto]
		for _, acc := range flows {
			c, err := loadtest.Dial(proto, addr, nil, acc+"@proxy.test", emulator.ProxyPassword, 30*time.Second)
			if err != nil {
				t.Errorf("proxy %s as %s: %v", proto, acc, err)
				continue
			}
			if err := c.Work(); err != nil {
				t.Errorf("proxy %s as %s: %v", proto, acc, err)
			}
			if err := c.Work(); err != nil {
				t.Errorf("proxy %s as %s: %v", proto, acc, err)
			}
			if err := c.Logout(); err != nil {
				t.Errorf("proxy %s as %s: logout: %v", proto, acc, err)
			}
		}
		if _, err := loadtest.Dial(proto, addr, nil, world.Alice, wrong, 30*time.Second); err == nil {
			t.Errorf("proxy %s: a wrong password was accepted", proto)
		}
	}
}

// passwordGrantRefreshToken gets a refresh token for alice from the emulator's token endpoint the way
// another tool would (ROPC, the desktop app), for the refresh-token import flow.
func passwordGrantRefreshToken(t *testing.T, e *emulator.Emulator, password string) string {
	t.Helper()
	form := url.Values{
		"grant_type": {"password"}, "client_id": {world.DesktopClientID}, "username": {world.Alice}, "password": {password},
		"scope": {"https://outlook.office.com/IMAP.AccessAsUser.All offline_access"},
	}
	resp, err := e.HTTPClient().PostForm(e.TenantAuthority("contoso.test")+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.RefreshToken == "" {
		t.Fatalf("password grant: %s", resp.Status)
	}
	return tok.RefreshToken
}

// privateKeyLine is a full base64 line from the middle of the PEM private key in pemData.
func privateKeyLine(pemData []byte) string {
	_, key, ok := strings.Cut(string(pemData), "PRIVATE KEY-----\n")
	if !ok {
		return ""
	}
	lines := strings.Split(key, "\n")
	if len(lines) < 3 {
		return ""
	}
	return lines[len(lines)/2]
}

// decodedBlobs decodes every run of base64 (standard or URL alphabet) of 16 characters or more in s:
// a SASL payload, an Authorization header or a JWT segment would hide a secret from a plain search.
func decodedBlobs(s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`[A-Za-z0-9+/_-]{16,}={0,2}`).FindAllString(s, -1) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if d, err := enc.DecodeString(m); err == nil {
				out = append(out, string(d))
				break
			}
		}
	}
	return out
}

func excerpt(text, v string) string {
	i := strings.Index(text, v)
	from, to := max(0, i-200), min(len(text), i+len(v)+100)
	return text[from:to]
}

func totalLen(cs []capture) int {
	n := 0
	for _, c := range cs {
		n += len(c.text)
	}
	return n
}

func itoa(i int) string { return strconv.Itoa(i) }

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
