package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every command run in-process
// (token, login, proxy, emulator, mail) must stop what it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
