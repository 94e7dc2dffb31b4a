package proxy_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every session, splice, accept
// loop and upstream connection must end when the proxy and the emulator are shut down.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
