package auth_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: token flights, retries, MSAL's
// HTTP connections and the loopback listener of interactive logins must all end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
