package proxy

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
)

// floodConn is a program that sends exactly n bytes past its error line and then neither sends
// nor closes: drained is closed once the proxy has read them all, and Read blocks from then on
// until the connection is closed.
type floodConn struct {
	discardConn
	n         int
	drained   chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *floodConn) Read(p []byte) (int, error) {
	if c.n == 0 {
		<-c.closed
		return 0, net.ErrClosed
	}
	k := min(len(p), c.n)
	clear(p[:k])
	if c.n -= k; c.n == 0 {
		close(c.drained)
	}
	return k, nil
}

func (c *floodConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

// drainTimeout bounds the test's waits: generous, as harness_test.go's drainTimeout.
const drainTimeout = time.Minute

// TestOverLimitDrainEndsWithTheSession: a session over a pre-login bound whose program keeps
// sending has read all the drain reads (the session's bound) and waits for the program to read its
// error line; when the session is closed meanwhile (a Shutdown past its drain deadline), that wait
// ends at once instead of running to drainTime. drainTime is an hour here, so a wait that ignores
// the close fails the test by its generous timeout rather than by any machine's speed.
func TestOverLimitDrainEndsWithTheSession(t *testing.T) {
	s, err := New(&config.Proxy{Listeners: []config.Listener{{Protocol: "imap", Listen: "127.0.0.1:0"}}}, noAccounts{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { drainTime = d }(drainTime)
	drainTime = time.Hour
	for _, l := range s.listeners {
		conn := &floodConn{drained: make(chan struct{}), closed: make(chan struct{})}
		sess := newSession(s, l, conn)
		conn.n = sess.in.session
		done := make(chan struct{})
		go func() {
			sess.closeOverLimit(&limitError{kind: limitLiteral, max: sess.in.line})
			close(done)
		}()
		select {
		case <-conn.drained:
		case <-time.After(drainTimeout):
			t.Fatal("the drain did not read the session's bound")
		}
		sess.close()
		select {
		case <-done:
		case <-time.After(drainTimeout):
			t.Fatalf("the drain still waited %v after its session was closed (drainTime %v)", drainTimeout, drainTime)
		}
	}
}
