package console_test

// The console driven by a real browser: Debian's Chromium, headless, through the DevTools protocol
// over a pipe (--remote-debugging-pipe: JSON messages ending in NUL on file descriptors 3 and 4), so
// that no client library is needed.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireBrowserEnv makes a missing browser a failure instead of a skip (scripts/test sets it).
const requireBrowserEnv = "MAILOAUTH_REQUIRE_BROWSER"

// screenshotEnv, when set, is where the test also writes the signed-in page (docs/console.png).
const screenshotEnv = "MAILOAUTH_CONSOLE_SCREENSHOT"

// browserWait bounds each wait for the page: Chromium's start on a busy machine takes seconds.
const browserWait = 2 * time.Minute

func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(requireBrowserEnv) != "" {
		t.Fatalf("no chromium on PATH, and %s is set: install Debian's chromium (apt-get install chromium)", requireBrowserEnv)
	}
	t.Skipf("no chromium on PATH (set %s to make this a failure)", requireBrowserEnv)
	return ""
}

// browser is one headless Chromium with one page attached.
type browser struct {
	t       *testing.T
	out     *os.File // Chromium reads commands here (its fd 3)
	in      *bufio.Reader
	mu      sync.Mutex
	nextID  int
	waiting map[int]chan cdpReply
	session string
	stderr  *bytes.Buffer
	shots   string
}

type cdpReply struct {
	Result json.RawMessage
	Err    *struct{ Message string }
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := findChromium(t)
	cmdR, cmdW, err := os.Pipe() // commands: test → Chromium
	if err != nil {
		t.Fatal(err)
	}
	evR, evW, err := os.Pipe() // replies and events: Chromium → test
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--window-size=1100,900", "--remote-debugging-pipe", "about:blank")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{cmdR, evW}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	cmdR.Close()
	evW.Close()
	b := &browser{t: t, out: cmdW, in: bufio.NewReader(evR), waiting: map[int]chan cdpReply{}, stderr: &stderr, shots: t.TempDir()}
	done := make(chan struct{})
	go b.read(done)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		cmdW.Close()
		evR.Close()
		<-done
		if t.Failed() {
			t.Logf("chromium's stderr:\n%s", stderr.String())
		}
		t.Logf("screenshots in %s", b.shots)
	})
	var target struct{ TargetID string }
	b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	b.call(b.session, "Page.enable", nil, nil)
	b.call(b.session, "Runtime.enable", nil, nil)
	return b
}

func (b *browser) read(done chan struct{}) {
	defer close(done)
	for {
		msg, err := b.in.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.waiting {
				close(ch)
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID     int
			Result json.RawMessage
			Error  *struct{ Message string }
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- cdpReply{m.Result, m.Error}
		}
	}
}

// call sends a command and decodes its result into out.
func (b *browser) call(session, method string, params any, out any) {
	b.t.Helper()
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpReply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, _ := json.Marshal(msg)
	if _, err := b.out.Write(append(data, 0)); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			b.t.Fatalf("%s: chromium went away", method)
		}
		if r.Err != nil {
			b.t.Fatalf("%s: %s", method, r.Err.Message)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				b.t.Fatalf("%s: %v", method, err)
			}
		}
	case <-time.After(browserWait):
		b.t.Fatalf("%s: no answer from chromium in %v", method, browserWait)
	}
}

// eval runs JavaScript in the page and returns its value as JSON.
func (b *browser) eval(js string) json.RawMessage {
	b.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage
		}
		ExceptionDetails *struct{ Text string }
	}
	b.call(b.session, "Runtime.evaluate", map[string]any{"expression": js, "returnByValue": true, "awaitPromise": true}, &r)
	if r.ExceptionDetails != nil {
		b.t.Fatalf("%s: %s", js, r.ExceptionDetails.Text)
	}
	return r.Result.Value
}

// waitFor polls a JavaScript condition until it is true. Polling is how a person watches a page:
// the console's page changes on its own (the device-code panel), with no event the test could join.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(browserWait)
	for {
		if string(b.eval("!!("+cond+")")) == "true" {
			return
		}
		if time.Now().After(deadline) {
			b.screenshot("timeout-" + strings.ReplaceAll(what, " ", "-"))
			b.t.Fatalf("%s: %s was not true within %v; the page:\n%s", what, cond, browserWait, b.eval("document.body ? document.body.innerText : ''"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) navigate(url string) {
	b.t.Helper()
	b.call(b.session, "Page.navigate", map[string]any{"url": url}, nil)
}

// screenshot saves the page as NAME.png among the test's screenshots.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	var r struct{ Data string }
	b.call(b.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// typeText types into the focused element and presses Enter, as a keyboard does.
func (b *browser) typeAndEnter(text string) {
	b.t.Helper()
	b.call(b.session, "Input.insertText", map[string]any{"text": text}, nil)
	for _, typ := range []string{"keyDown", "keyUp"} {
		ev := map[string]any{"type": typ, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
		if typ == "keyDown" {
			ev["text"] = "\r"
		}
		b.call(b.session, "Input.dispatchKeyEvent", ev, nil)
	}
}

// TestBrowser: log in with the keyboard, sign alice-device in through the device-code panel (the
// emulator approves at once), see its card turn healthy without a reload, run the doctor on a broken
// account and see its finding, log out; a screenshot of each state.
func TestBrowser(t *testing.T) {
	l := newLab(t, labOptions{})
	b := startBrowser(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the console's log:\n%s", l.logs)
		}
	})
	base := l.srv.URL

	b.navigate(base + "/")
	b.waitFor("the login page", `location.pathname === "/login" && document.activeElement && document.activeElement.id === "password"`)
	b.screenshot("1-login")
	b.typeAndEnter(adminPassword)
	b.waitFor("the accounts", `location.pathname === "/" && document.querySelector("#account-alice-device")`)
	if got := string(b.eval(`document.querySelector("#account-alice-device .badge").dataset.state`)); got != `"signin"` {
		t.Fatalf("alice-device before sign-in: state %s, want signin", got)
	}
	b.screenshot("2-accounts")

	// A mark on the page's window: a reload would lose it.
	b.eval(`window.noReload = "still here"`)
	b.eval(`document.querySelector('#account-alice-device form[data-signin="device"] button').click()`)
	b.waitFor("the code or the signed-in card", `document.querySelector("#account-alice-device .usercode") || document.querySelector('#account-alice-device .badge[data-state="ok"]')`)
	// The emulator approves at once, so the code may be gone already; when it is still there, it is
	// on the page for a person to type.
	if code := string(b.eval(`(document.querySelector("#account-alice-device .usercode") || {}).textContent || ""`)); code != `""` {
		b.screenshot("3-device-code")
		if len(code) < len(`"ABCD"`) {
			t.Errorf("user code shown: %s", code)
		}
	}
	b.waitFor("alice-device healthy", `document.querySelector('#account-alice-device .badge[data-state="ok"]')`)
	if got := string(b.eval(`window.noReload`)); got != `"still here"` {
		t.Fatalf("the page reloaded (mark %s)", got)
	}
	card := string(b.eval(`document.querySelector("#account-alice-device").innerText`))
	if !strings.Contains(card, "alice@contoso.test") || !strings.Contains(card, "Healthy") {
		t.Errorf("alice-device's card after sign-in:\n%s", card)
	}
	shot := b.screenshot("4-signed-in")
	if dst := os.Getenv(screenshotEnv); dst != "" {
		data, err := os.ReadFile(shot)
		if err == nil {
			err = os.WriteFile(dst, data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	// On a phone: one column, nothing wider than the screen.
	b.call(b.session, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}, nil)
	b.waitFor("the phone layout", `window.innerWidth === 390`)
	if got := string(b.eval(`document.documentElement.scrollWidth <= window.innerWidth`)); got != "true" {
		t.Errorf("on a 390 px screen the page is %s px wide", b.eval(`document.documentElement.scrollWidth`))
	}
	b.screenshot("5-phone")
	b.call(b.session, "Emulation.clearDeviceMetricsOverride", nil, nil)

	b.eval(`document.querySelector('#account-broken form[action$="/doctor"] button').click()`)
	b.waitFor("the doctor's report", `document.querySelector("#doctor-result") && document.querySelector(".finding .code")`)
	finding := string(b.eval(`document.querySelector(".finding .code").textContent`))
	if !strings.HasPrefix(finding, `"MO-`) {
		t.Fatalf("the doctor's finding: %s", finding)
	}
	b.screenshot("6-doctor")

	b.eval(`document.querySelector('a[href="/"]').click()`)
	b.waitFor("the accounts again", `location.pathname === "/" && document.querySelector("#account-broken")`)
	if got := string(b.eval(`document.querySelector("#account-broken .code").textContent`)); got != finding {
		t.Errorf("broken's card shows %s, want the doctor's %s", got, finding)
	}
	b.eval(`document.querySelector("#logout").click()`)
	b.waitFor("the login page after logout", `location.pathname === "/login" && document.querySelector("#password")`)
	b.screenshot("7-logged-out")
	b.navigate(base + "/")
	b.waitFor("the login page, not the accounts", `location.pathname === "/login" && document.readyState === "complete"`)
	if got := string(b.eval(`document.body.innerText`)); strings.Contains(got, "alice-device") {
		t.Errorf("the accounts are shown after logout:\n%s", got)
	}
	for _, w := range []string{"console login", "console sign-in completed", "console doctor run", "console logout"} {
		if !strings.Contains(l.logs.String(), w) {
			t.Errorf("the log lacks %q", w)
		}
	}
}
