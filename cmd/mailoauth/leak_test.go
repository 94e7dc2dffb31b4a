package main

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// asCLI, set in a re-executed test binary's environment, makes it the mailoauth binary: tests that
// need separate processes (TestStrictRotationManyProcesses) run `mailoauth` as the test binary itself.
const asCLI = "MAILOAUTH_TEST_AS_CLI"

// TestMain fails the package if any goroutine outlives the tests: every command run in-process
// (token, login, proxy, emulator, mail) must stop what it started.
func TestMain(m *testing.M) {
	if os.Getenv(asCLI) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}
