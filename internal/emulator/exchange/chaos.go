package exchange

// Injected failures of the mail servers (world.Fault with endpoint "imap", "pop" or "smtp"), the
// chaos Mailpit offers: a chosen reply, latency or a dropped connection at a command, and a
// connection cut after N bytes. Like the identity platform's faults they count by Fault.ID, so a
// runtime change of the World does not restart them.

import (
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// chaos holds the faults' counters and random sources.
type chaos struct {
	mu   sync.Mutex
	hits map[string]int
	rngs map[string]*rand.Rand
}

func (p Protocol) endpoint() string { return strings.ToLower(p.String()) }

// fault returns the first fault of the protocol's that applies to the next command (conn false) or
// connection (conn true), counting it for every fault that matches.
func (s *Servers) fault(p Protocol, conn bool) *world.Fault {
	w := s.live.Load()
	s.chaos.mu.Lock()
	defer s.chaos.mu.Unlock()
	if s.chaos.hits == nil {
		s.chaos.hits, s.chaos.rngs = map[string]int{}, map[string]*rand.Rand{}
	}
	for i := range w.Faults {
		f := &w.Faults[i]
		if f.Endpoint != p.endpoint() || (f.DisconnectAfter > 0) != conn {
			continue
		}
		s.chaos.hits[f.ID]++
		n := s.chaos.hits[f.ID]
		if n <= f.After || (f.Times > 0 && n > f.After+f.Times) {
			continue
		}
		if f.Probability > 0 && f.Probability < 1 {
			r := s.chaos.rngs[f.ID]
			if r == nil {
				seed := uint64(f.Seed)
				if seed == 0 {
					seed = rand.Uint64()
				}
				r = rand.New(rand.NewPCG(seed, seed))
				s.chaos.rngs[f.ID] = r
			}
			if r.Float64() >= f.Probability {
				continue
			}
		}
		return f
	}
	return nil
}

// commandFault applies the protocol's fault to the command just read: it waits out the latency and
// returns the fault when it answers (Reply) or ends the connection (Drop), nil otherwise.
func (s *Servers) commandFault(p Protocol) *world.Fault {
	f := s.fault(p, false)
	if f == nil {
		return nil
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-s.quit:
			t.Stop()
			return &world.Fault{Drop: true}
		}
	}
	if f.Reply == "" && !f.Drop {
		return nil
	}
	return f
}

// closesAfter reports whether an injected reply ends the connection, as Exchange's 421 and BYE do.
func closesAfter(reply string) bool {
	return strings.HasPrefix(reply, "421") || strings.HasPrefix(reply, "* BYE")
}

// cutConn closes the connection once left bytes have been written to it.
type cutConn struct {
	net.Conn
	mu   sync.Mutex
	left int
}

func (c *cutConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left <= 0 {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	if len(p) <= c.left {
		c.left -= len(p)
		return c.Conn.Write(p)
	}
	n, _ := c.Conn.Write(p[:c.left])
	c.left = 0
	c.Conn.Close()
	return n, net.ErrClosed
}

// connFault wraps a new connection of the listener's protocol in a cutConn when a fault says so.
func (s *Servers) connFault(listener string, c net.Conn) net.Conn {
	p := map[string]Protocol{AddrIMAP: IMAP, AddrIMAPStartTLS: IMAP, AddrPOP: POP, AddrSMTP: SMTP}[listener]
	if f := s.fault(p, true); f != nil {
		return &cutConn{Conn: c, left: f.DisconnectAfter}
	}
	return c
}
