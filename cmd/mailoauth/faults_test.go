package main

// Identity-platform faults seen through `mailoauth token` (issue 8, SPEC §11): each run is a new
// process over the shared store, as a mail program calling `token` would make it.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// faultCLI starts an emulator with w, logs alice-device in, and returns a runner of the CLI, the
// emulator and the Exchange token of the login.
func faultCLI(t *testing.T, w *world.World) (cli func(args ...string) (int, string, string), e *emulator.Emulator, exch string) {
	t.Helper()
	e, cfg := startEmulator(t, emulator.Options{World: w, AutoApprove: world.Alice})
	cli = func(args ...string) (int, string, string) {
		return runCLI(t, context.Background(), append([]string{"--config", cfg}, args...)...)
	}
	if code, out, errs := cli("login", "alice-device"); code != exitOK {
		t.Fatalf("login: exit %d, %q %q", code, out, errs)
	}
	code, out, errs := cli("token", "alice-device")
	if code != exitOK {
		t.Fatalf("token after login: exit %d, %q", code, errs)
	}
	return cli, e, strings.TrimSpace(out)
}

// oneSentence checks a failed run's stderr: one line, "mailoauth: " and the account, no token.
func oneSentence(t *testing.T, errs string, secrets ...string) {
	t.Helper()
	if !strings.HasPrefix(errs, "mailoauth: ") || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "account alice-device") {
		t.Errorf("stderr is not one sentence about the account: %q", errs)
	}
	if strings.Contains(errs, "eyJ") {
		t.Errorf("stderr holds something that looks like a JWT: %q", errs)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(errs, s) {
			t.Errorf("stderr holds a token: %q", errs)
		}
	}
}

// TestTokenDuringIdentityFaults: while the token endpoint fails (503, dropped connections), `token`
// keeps printing the stored Exchange token without a request; a Graph token (a refresh) fails after
// three attempts with exit 1 and one sentence that does not ask for a login; once the fault is over
// the kept refresh token gets the Graph token without a new login.
func TestTokenDuringIdentityFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault world.Fault
		says  string
	}{
		{"503", world.Fault{Status: 503}, "AADSTS90033"},
		{"dropped connection", world.Fault{Drop: true}, "cannot reach the identity platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := world.Default()
			// The login's token request passes; the next three (one `token` run's attempts) fail.
			tc.fault.Endpoint, tc.fault.After, tc.fault.Times = "token", 1, 3
			w.Faults = []world.Fault{tc.fault}
			cli, e, exch := faultCLI(t, w)
			before := e.Identity.Requests("token")

			code, out, errs := cli("token", "alice-device", "--resource", "graph")
			if code != exitFailure || out != "" {
				t.Fatalf("graph token during the fault: exit %d, stdout %q, stderr %q", code, out, errs)
			}
			oneSentence(t, errs, exch)
			if !strings.Contains(errs, tc.says) || strings.Contains(errs, " login alice-device") {
				t.Errorf("stderr %q should say %q and not ask for a login", errs, tc.says)
			}
			if n := e.Identity.Requests("token") - before; n != 3 {
				t.Fatalf("%d token requests from one run during the fault, want 3 (retried twice)", n)
			}

			mid := e.Identity.Requests("token")
			if code, out, _ := cli("token", "alice-device"); code != exitOK || strings.TrimSpace(out) != exch {
				t.Fatalf("the stored Exchange token was not printed after a failed refresh: exit %d", code)
			}
			if n := e.Identity.Requests("token") - mid; n != 0 {
				t.Fatalf("%d token requests for a stored token", n)
			}

			code, out, errs = cli("token", "alice-device", "--resource", "graph")
			if code != exitOK || payload(t, strings.TrimSpace(out))["aud"] != "https://graph.microsoft.com" {
				t.Fatalf("graph token after the fault: exit %d, stderr %q (was the refresh token dropped?)", code, errs)
			}
			if n := e.Identity.Requests("token") - mid; n != 1 {
				t.Fatalf("%d token requests after the fault, want 1", n)
			}
		})
	}
}

// TestTokenSlowIdentityPlatform: a slow answer (within the client's timeout) is waited for once.
func TestTokenSlowIdentityPlatform(t *testing.T) {
	const latency = 1500 * time.Millisecond
	w := world.Default()
	w.Faults = []world.Fault{{Endpoint: "token", After: 1, Times: 1, Latency: latency}}
	cli, e, _ := faultCLI(t, w)
	before := e.Identity.Requests("token")
	start := time.Now()
	code, out, errs := cli("token", "alice-device", "--resource", "graph")
	if code != exitOK || payload(t, strings.TrimSpace(out))["aud"] != "https://graph.microsoft.com" {
		t.Fatalf("slow identity platform: exit %d, stderr %q", code, errs)
	}
	if d := time.Since(start); d < latency {
		t.Errorf("answered in %v, before the %v latency", d, latency)
	}
	if n := e.Identity.Requests("token") - before; n != 1 {
		t.Fatalf("%d token requests for one slow answer, want 1", n)
	}
}

// TestTokenInvalidGrantSaysLogIn: a refused refresh token (the user's sessions revoked: AADSTS50173
// invalid_grant) is asked once, and `token` exits 1 saying to log in again, unlike a transient fault;
// the stored Exchange token is still printed.
func TestTokenInvalidGrantSaysLogIn(t *testing.T) {
	w := world.Default()
	var alice *world.User
	for _, tn := range w.Tenants {
		if u := tn.User(world.Alice); u != nil {
			alice = u
		}
	}
	alice.RevokedBefore = time.Now().Add(time.Hour) // refresh tokens issued before it are refused
	cli, e, exch := faultCLI(t, w)
	before := e.Identity.Requests("token")
	code, out, errs := cli("token", "alice-device", "--resource", "graph")
	if code != exitFailure || out != "" {
		t.Fatalf("revoked refresh token: exit %d, stdout %q", code, out)
	}
	oneSentence(t, errs, exch)
	if !strings.Contains(errs, "AADSTS50173") || !strings.HasSuffix(strings.TrimSpace(errs), " login alice-device") || !saysLogin(errs, "alice-device") {
		t.Errorf("stderr %q should give the refusal and end with what to run", errs)
	}
	if n := e.Identity.Requests("token") - before; n != 1 {
		t.Fatalf("a refused refresh token was sent %d times, want 1", n)
	}
	if code, out, _ := cli("token", "alice-device"); code != exitOK || strings.TrimSpace(out) != exch {
		t.Fatalf("the stored Exchange token was not printed after a refused refresh: exit %d", code)
	}
}
