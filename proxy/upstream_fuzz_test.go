package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/dial"
)

// endlessConn is a server that sends prefix once and then body over and over, up to hardCap bytes
// (then EOF; an empty body ends after the prefix); what it is sent is dropped. Nothing blocks, so a
// reader that does not stop by itself reads all of hardCap.
type endlessConn struct {
	discardConn
	prefix, body []byte
	served       int
}

const hardCap = 16 << 20

func (c *endlessConn) Read(p []byte) (int, error) {
	if c.served >= hardCap {
		return 0, io.EOF
	}
	p = p[:min(len(p), hardCap-c.served)]
	n := 0
	if c.served < len(c.prefix) {
		n = copy(p, c.prefix[c.served:])
	} else if len(c.body) > 0 {
		for n < len(p) {
			off := (c.served + n - len(c.prefix)) % len(c.body)
			n += copy(p[n:], c.body[off:])
		}
	} else {
		return 0, io.EOF
	}
	c.served += n
	return n, nil
}

// Per login, whatever the server sends: what the proxy may read from it (the bound on everything
// before the splice, what the buffered reader holds beyond it, and a TLS handshake after STARTTLS,
// which crypto/tls bounds at a 256 KiB message), and what it may allocate meanwhile.
const (
	maxTLSHandshakeRead = 512 << 10
	maxLoginAlloc       = 4 << 20
)

// FuzzUpstreamBounded: whatever a server streams before the splice — the input up to its first NUL
// once, then the rest of it over and over without end — each protocol's upstream side, in both TLS
// modes, stops by itself, having read and allocated a bounded amount (issue 13: a server streaming
// 220- lines took a proxy from 0.1 to 1.1 GB).
func FuzzUpstreamBounded(f *testing.F) {
	for _, seed := range []string{
		"220-" + strings.Repeat("x", 1000) + "\r\n", // an endless SMTP greeting, in clear text on 587
		"220 hi\r\n\x00250-X-EXTENSION\r\n",         // an endless EHLO reply
		"220 hi\r\n250 STARTTLS\r\n\x00220-\r\n",    // endless empty lines answering STARTTLS
		"220 hi\r\n250 x\r\n\x00334 \r\n",           // endless SMTP challenges
		"* OK hi\r\n\x00* 1 EXISTS\r\n",             // endless IMAP untagged lines
		"* OK hi\r\n\x00+ eyJzdGF0dXMiOiI0MDEifQ==\r\n",
		"+OK hi\r\n\x00+ " + strings.Repeat("e30=", 10<<10) + "\r\n", // huge POP3 challenges
		"+OK hi\r\n\x00+ \r\n",
		"x",  // one endless line
		"\n", // endless empty lines
		"* OK hi\r\nm1 OK done\r\n\x00",
		"+OK hi\r\n+ \r\n+OK in\r\n",
		"220 hi\r\n250-x\r\n250 AUTH XOAUTH2\r\n334 \r\n235 ok\r\n",
		"",
	} {
		f.Add(seed)
	}
	ups := []upstreamProtocol{imapUp{}, popUp{}, smtpUp{}}
	f.Fuzz(func(t *testing.T, input string) {
		prefix, body, found := strings.Cut(input, "\x00")
		if !found {
			prefix, body = "", input
		}
		for _, p := range ups {
			for _, mode := range []dial.Mode{dial.Implicit, dial.StartTLS} {
				// Allocation is the least of three runs, so that another goroutine's allocation
				// cannot fail it; what is read is the same every run.
				read, alloc := 0, uint64(math.MaxUint64)
				for range 3 {
					r, a := loginAgainst(p, mode, []byte(prefix), []byte(body))
					read, alloc = max(read, r), min(alloc, a)
				}
				limit := maxUpstreamTotal + 4096
				if mode == dial.StartTLS {
					limit += maxTLSHandshakeRead
				}
				if read > limit {
					t.Fatalf("%s (%v) read %d bytes from a server streaming without end, more than %d", p.name(), mode, read, limit)
				}
				if alloc > maxLoginAlloc {
					t.Fatalf("%s (%v) allocated %d KiB against a server streaming without end, more than %d KiB", p.name(), mode, alloc>>10, maxLoginAlloc>>10)
				}
			}
		}
	})
}

// loginAgainst runs p's opening and authentication against an endless server: what it read from
// the server, and what it allocated.
func loginAgainst(p upstreamProtocol, mode dial.Mode, prefix, body []byte) (read int, alloc uint64) {
	conn := &endlessConn{prefix: bytes.Clone(prefix), body: bytes.Clone(body)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	u := &upstreamConn{conn: conn, addr: "mail.example:587", tlsCfg: &tls.Config{ServerName: "mail.example"}, ctx: ctx, hello: "proxy.example"}
	u.newReader()
	if err := p.open(u, mode); err == nil {
		_, _ = p.authenticate(u, "XOAUTH2", "user@example.com", "not-a-real-token")
	}
	runtime.ReadMemStats(&after)
	return conn.served, after.TotalAlloc - before.TotalAlloc
}
