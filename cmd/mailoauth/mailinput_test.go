package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// TestMailInputCheckedBeforeConnecting: a malformed IMAP message id and a --save-attachments
// directory that is not there are exit 2, said in one line with the fix, before any connection: the
// account's identity platform and IMAP server are a listener that counts who comes.
func TestMailInputCheckedBeforeConnecting(t *testing.T) {
	e, cfg := startEmulator(t, emulator.Options{AutoApprove: world.Alice})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var came atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			came.Add(1)
			c.Close()
		}
	}()
	path := withAccounts(t, e, cfg, map[string]func(*config.Account){"away": func(a *config.Account) {
		a.Authority, a.IMAP = "https://"+ln.Addr().String(), ln.Addr().String()
	}})
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "attachments")

	list := "mailoauth --config " + path + " mail list away prints the ids"
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"mail", "get", "away", "not-an-id"}, []string{`"not-an-id" is not an IMAP message id`, list}},
		{[]string{"mail", "move", "away", "0", "Archive"}, []string{`"0" is not an IMAP message id`, list}},
		{[]string{"mail", "delete", "away", "1.2.%%%"}, []string{`"1.2.%%%" is not an IMAP message id`, list}},
		{[]string{"mail", "get", "away", "1", "--save-attachments", missing}, []string{missing + ": the directory does not exist", "mkdir -p " + missing}},
		{[]string{"mail", "get", "away", "1", "--save-attachments", file}, []string{file + " is a file, not a directory"}},
	} {
		code, out, errs := runCLI(t, context.Background(), append([]string{"--config", path}, tc.args...)...)
		if code != exitUsage || out != "" || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q", tc.args, code, exitUsage, out, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%v: stderr %q lacks %q", tc.args, errs, w)
			}
		}
		if strings.Contains(errs, "not a directory") && !strings.Contains(errs, "is a file") {
			t.Errorf("%v: %q says \"not a directory\" of a directory that is not there", tc.args, errs)
		}
	}
	if n := came.Load(); n != 0 {
		t.Errorf("%d connections to the account's servers for input that was wrong before any", n)
	}
}
