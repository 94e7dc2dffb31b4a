package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/store"
)

// deviceApprover is the CLI's stderr in a test: when the CLI shows a device code, the person
// approves it as upn at once (the emulator approves nobody by itself).
type deviceApprover struct {
	e   *emulator.Emulator
	upn string
	buf bytes.Buffer
	err error
}

var userCodeRE = regexp.MustCompile(`enter the code (\S+)`)

func (d *deviceApprover) Write(p []byte) (int, error) {
	d.buf.Write(p)
	if m := userCodeRE.FindSubmatch(p); m != nil {
		d.err = d.e.Identity.ApproveDevice(string(m[1]), d.upn)
	}
	return len(p), nil
}

// TestLoginKeepsOneUser: an account of the CLI stands for one person. A program sharing the store
// signed bob in to alice-device through the library; `mailoauth login alice-device` as alice leaves
// alice alone in the account, and `token` serves her.
func TestLoginKeepsOneUser(t *testing.T) {
	e, cfgPath := startEmulator(t, emulator.Options{})
	ctx := context.Background()
	// account is alice-device as a program sharing the CLI's store (or a later run) sees it.
	account := func() *auth.Account {
		t.Helper()
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(cfg.Store, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := auth.New(cfg, auth.Options{Store: st}).Account("alice-device")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	users := func() []auth.User {
		t.Helper()
		u, err := account().Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if _, err := account().Login(ctx, auth.LoginOptions{DeviceCode: func(dc auth.DeviceCode) {
		if err := e.Identity.ApproveDevice(dc.UserCode, world.Bob); err != nil {
			t.Error(err)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if u := users(); len(u) != 1 || u[0].Username != world.Bob {
		t.Fatalf("users after bob's sign-in through the library: %+v", u)
	}

	approver := &deviceApprover{e: e, upn: world.Alice}
	var out bytes.Buffer
	if code := run(ctx, []string{"--config", cfgPath, "login", "alice-device"}, strings.NewReader(""), &out, approver); code != exitOK || approver.err != nil {
		t.Fatalf("login: exit %d (%v), stdout %q, stderr %q", code, approver.err, out.String(), approver.buf.String())
	}
	if !strings.Contains(out.String(), "as "+world.Alice) {
		t.Errorf("login says %q, want alice", out.String())
	}
	if u := users(); len(u) != 1 || u[0].Username != world.Alice {
		t.Fatalf("users after mailoauth login as alice: %+v, want alice alone", u)
	}
	code, tok, errs := runCLI(t, ctx, "--config", cfgPath, "token", "alice-device")
	if code != exitOK || payload(t, strings.TrimSpace(tok))["upn"] != world.Alice {
		t.Fatalf("token after the login: exit %d, %q", code, errs)
	}
}
