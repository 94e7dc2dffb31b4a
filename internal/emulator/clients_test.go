package emulator_test

// Independent clients against the emulator: MSAL for Python (Debian's python3-msal, with Python's
// imaplib and smtplib) and msal-node (with nodemailer), each running every flow it supports from a
// script in testdata/. They share nothing with this module, so they prove the emulator speaks the
// protocols as Microsoft's own libraries expect. scripts/test installs both and sets
// MAILOAUTH_REQUIRE_CLIENTS=1, under which a missing client fails the test instead of skipping it.

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// requireClients makes a missing independent client a failure (scripts/test sets it).
const requireClients = "MAILOAUTH_REQUIRE_CLIENTS"

// missing skips the test, or fails it under MAILOAUTH_REQUIRE_CLIENTS, when a client is not installed.
func missing(t *testing.T, what, install string) {
	t.Helper()
	if os.Getenv(requireClients) != "" {
		t.Fatalf("%s is not installed (%s is set): %s", what, requireClients, install)
	}
	t.Skipf("%s is not installed (%s)", what, install)
}

// clientWorld is the default world with access tokens that live less than the five minutes before
// expiry at which MSAL (every flavour) stops using a cached token: a silent call then refreshes.
func clientWorld() *world.World {
	w := world.Default()
	w.Tokens.AccessToken = 4 * time.Minute
	return w
}

// clientEnv writes what a client script needs into its environment: the authority, the CA, the apps'
// ids and credentials, the users and the mail servers. CA and certificate go into files.
func clientEnv(t *testing.T, v *env) []string {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	cert := filepath.Join(dir, "daemon.pem")
	daemon := v.E.Credentials["daemon"]
	for name, data := range map[string][]byte{ca: v.E.CAPEM(), cert: daemon.CertPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	thumb := sha1.Sum(daemon.Cert.Raw)
	host, imapPort, _ := net.SplitHostPort(v.E.MailAddrs["imap"])
	_, smtpPort, _ := net.SplitHostPort(v.E.MailAddrs["smtp"])
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"AUTHORITY=" + v.E.TenantAuthority("contoso"), "REQUESTS_CA_BUNDLE=" + ca, "NODE_EXTRA_CA_CERTS=" + ca,
		"DESKTOP_ID=" + world.DesktopClientID, "DAEMON_ID=" + world.DaemonClientID,
		"DAEMON_SECRET=" + daemon.Secret, "CERT_PEM=" + cert, "CERT_THUMBPRINT=" + hex.EncodeToString(thumb[:]),
		"AUTO_USER=" + world.Alice, "ROPC_USER=" + world.Bob, "ROPC_PASSWORD=bob-password",
		"MAIL_HOST=" + host, "IMAP_PORT=" + imapPort, "SMTP_PORT=" + smtpPort,
	}
}

// flowResult is one flow's outcome as a script prints it.
type flowResult struct {
	OK               bool   `json:"ok"`
	AccessToken      string `json:"access_token"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Result           any    `json:"result"`
}

// runClient runs a client script and decodes its results. Its output holds tokens, so a failure
// reports stderr and the flows' errors, never stdout whole.
func runClient(t *testing.T, cmd *exec.Cmd) map[string]flowResult {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("%s: %v\n%s", filepath.Base(cmd.Args[len(cmd.Args)-1]), err, redact(string(stderr), out))
	}
	var res map[string]flowResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s printed no JSON object (%v)", filepath.Base(cmd.Args[len(cmd.Args)-1]), err)
	}
	return res
}

// redact removes every token a script printed from text that is about to be shown.
func redact(text string, out []byte) string {
	var res map[string]flowResult
	if json.Unmarshal(out, &res) == nil {
		for _, r := range res {
			if r.AccessToken != "" {
				text = strings.ReplaceAll(text, r.AccessToken, "[token]")
			}
		}
	}
	return text
}

// flow returns a flow's result, failing the test with Entra's or the mail server's answer when the
// flow failed.
func flow(t *testing.T, res map[string]flowResult, name string) flowResult {
	t.Helper()
	r, ok := res[name]
	if !ok {
		names := make([]string, 0, len(res))
		for n := range res {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Fatalf("no result for %s (have %v)", name, names)
	}
	if !r.OK {
		t.Fatalf("%s failed: %s %s", name, r.Error, r.ErrorDescription)
	}
	return r
}

// checkClientFlows checks the tokens a script got, the mail it sent and read, and the token requests
// the emulator saw: one per flow, and one refresh for the silent call.
func checkClientFlows(t *testing.T, v *env, res map[string]flowResult, mail ...string) {
	t.Helper()
	c := v.verify(t, flow(t, res, "client_secret").AccessToken)
	wantAppToken(t, v, c, "daemon", "https://outlook.office365.com", "1")
	c = v.verify(t, flow(t, res, "client_certificate").AccessToken)
	wantAppToken(t, v, c, "daemon", "https://outlook.office365.com", "2")
	for name, want := range map[string]struct{ upn, scp string }{
		"password":    {world.Bob, "IMAP.AccessAsUser.All"},
		"device_code": {world.Alice, "SMTP.Send"},
		"auth_code":   {world.Alice, "IMAP.AccessAsUser.All"},
		"silent":      {world.Alice, "IMAP.AccessAsUser.All"},
	} {
		c := v.verify(t, flow(t, res, name).AccessToken)
		wantUserToken(t, v, c, want.upn, world.ExchangeResource, want.scp, world.DesktopClientID)
	}
	if res["silent"].AccessToken == res["auth_code"].AccessToken {
		t.Error("the silent call returned the cached token MSAL should have refreshed")
	}
	for _, name := range mail {
		flow(t, res, name)
	}

	count := func(kind events.Kind, grant, user string) int {
		return len(v.E.Events.Since(0, func(e events.Event) bool {
			// MSAL names the device grant by its URN.
			g := strings.TrimPrefix(e.Grant, "urn:ietf:params:oauth:grant-type:")
			return e.Kind == kind && g == grant && (user == "" || e.User == user)
		}, 0))
	}
	if n := count(events.TokenIssued, "client_credentials", ""); n != 2 {
		t.Errorf("%d client-credentials tokens issued, want 2 (secret, certificate)", n)
	}
	for grant, user := range map[string]string{"password": world.Bob, "device_code": world.Alice,
		"authorization_code": world.Alice, "refresh_token": world.Alice} {
		if n := count(events.TokenIssued, grant, user); n != 1 {
			t.Errorf("%d %s tokens issued to %s, want 1", n, grant, user)
		}
	}
	if n := len(v.E.Events.Since(0, func(e events.Event) bool { return e.Kind == events.TokenRefused }, 0)); n != 0 {
		t.Errorf("%d token requests refused", n)
	}
	delivered := v.E.Events.Since(0, func(e events.Event) bool {
		return e.Kind == events.MessageDelivered && strings.EqualFold(e.Mailbox, world.Bob)
	}, 0)
	if len(delivered) != 1 {
		t.Errorf("%d messages delivered to %s, want the one sent over SMTP", len(delivered), world.Bob)
	}
}

func clientCtx(t *testing.T) context.Context {
	// MSAL's flows and the mail sessions take seconds; a busy machine may take many times that.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestMSALPython(t *testing.T) {
	// Debian's python3-msal is for Debian's Python, which need not be the python3 first on PATH.
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import msal").Run(); err != nil {
		missing(t, "MSAL for Python", "apt-get install python3-msal")
	}
	v := start(t, clientWorld(), world.Alice, nil)
	cmd := exec.CommandContext(clientCtx(t), python, filepath.Join("testdata", "msal_python.py"))
	cmd.Env = clientEnv(t, v)
	checkClientFlows(t, v, runClient(t, cmd), "imap_app", "imap_password", "imap_silent", "smtp_device")
}

// nodeModules is where scripts/test installs msal-node and nodemailer: MAILOAUTH_NODE_MODULES, or
// mailoauth-test/node/node_modules in the user's cache directory.
func nodeModules() string {
	if d := os.Getenv("MAILOAUTH_NODE_MODULES"); d != "" {
		return d
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(cache, "mailoauth-test", "node", "node_modules")
}

func TestMSALNode(t *testing.T) {
	node, err := exec.LookPath("node")
	modules := nodeModules()
	if err != nil {
		missing(t, "Node.js", "apt-get install nodejs")
	}
	for _, pkg := range []string{"@azure/msal-node", "nodemailer"} {
		if _, err := os.Stat(filepath.Join(modules, pkg, "package.json")); err != nil {
			missing(t, pkg, "npm install --prefix "+filepath.Dir(modules)+" "+pkg+" (scripts/test does)")
		}
	}
	v := start(t, clientWorld(), world.Alice, nil)
	cmd := exec.CommandContext(clientCtx(t), node, filepath.Join("testdata", "msal_node.cjs"))
	cmd.Env = append(clientEnv(t, v), "NODE_PATH="+modules)
	checkClientFlows(t, v, runClient(t, cmd), "smtp_device")
}

// The Python and Node snippets of docs/emulator-ci.md are the scripts' marked sections, verbatim (less
// their indentation): the documented code is the code the tests above run.
func TestEmulatorCIDocSnippets(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "emulator-ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	for script, comment := range map[string]string{"msal_python.py": "#", "msal_node.cjs": "//"} {
		src, err := os.ReadFile(filepath.Join("testdata", script))
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`(?ms)^[ \t]*` + comment + ` --- docs/emulator-ci\.md: ([a-z-]+) ---\n(.*?)\n[ \t]*` + comment + ` --- end ---`)
		found := re.FindAllStringSubmatch(string(src), -1)
		if len(found) < 2 {
			t.Fatalf("%s has %d documented sections", script, len(found))
		}
		for _, m := range found {
			if !strings.Contains(string(doc), "\n"+dedent(m[2])+"\n```") {
				t.Errorf("docs/emulator-ci.md lacks %s's section %s as it is in the script", script, m[1])
			}
		}
	}
}

// dedent removes the indentation every non-empty line shares.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " \t")); indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}
