package proxy_test

// Upstream replies are bounded (issue 13, item 3): a server — or, before STARTTLS, anyone on the path
// — that streams an endless reply before the splice (SMTP continuation lines in the clear greeting,
// IMAP untagged lines before the tagged answer, SASL challenges without end, huge challenges) costs
// the proxy a bounded amount of memory and reading: the session is refused with the protocol's
// temporary failure, the log says which bound the server broke, and other sessions carry on.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
)

// streamCap is how much a hostile server streams at most: far beyond every bound, so that a proxy
// reading it all is caught.
const streamCap = 32 << 20

// script is a hostile server's side of one connection: the normal opening (greeting, answers to the
// proxy's commands), then the bytes it streams over and over (nil: none).
type script func(w io.Writer, r *bufio.Reader) []byte

// streamed is how one hostile connection ended: bytes streamed (-1: the proxy did not send what the
// script expected), and whether the proxy hung up first.
type streamed struct {
	sent   int64
	hungUp bool
}

// hostile is a mail server on loopback (TLS from the first byte, or plain) that runs the current
// script on each connection and reports how its stream ended; a stream the proxy did not hang up on
// is held open (a server that stalls) until the test ends.
type hostile struct {
	addr    string
	certPEM []byte // nil: plain text
	ends    chan streamed
	mu      sync.Mutex
	script  script
}

func newHostile(t *testing.T, useTLS bool) *hostile {
	t.Helper()
	var ln net.Listener
	h := &hostile{ends: make(chan streamed, 16)}
	if useTLS {
		ln, h.certPEM = tlsListener(t, tls.VersionTLS12, 0)
	} else {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	h.addr = ln.Addr().String()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); h.serve(c, stop, &wg) }()
		}
	}()
	return h
}

func (h *hostile) set(s script) {
	h.mu.Lock()
	h.script = s
	h.mu.Unlock()
}

func (h *hostile) serve(c net.Conn, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer c.Close()
	h.mu.Lock()
	s := h.script
	h.mu.Unlock()
	r := bufio.NewReader(c)
	chunk := s(c, r)
	if chunk == nil {
		h.ends <- streamed{sent: -1}
		return
	}
	// What the proxy sends from now on (answers to challenges) is read and dropped, so that its
	// writes never block.
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, r) }()
	var sent int64
	var err error
	for sent < streamCap && err == nil {
		var n int
		n, err = c.Write(chunk)
		sent += int64(n)
	}
	h.ends <- streamed{sent: sent, hungUp: err != nil}
	if err == nil {
		<-stop
	}
}

// repeat is line, CRLF-terminated, repeated to about 32 KiB (one write of the stream).
func repeat(line string) []byte {
	line += "\r\n"
	return bytes.Repeat([]byte(line), max(1, (32<<10)/len(line)))
}

// expect reads one line (a command from the proxy) and reports whether it starts with prefix.
func expect(r *bufio.Reader, prefix string) bool {
	l, err := r.ReadString('\n')
	return err == nil && strings.HasPrefix(strings.ToUpper(l), prefix)
}

// errorChallenge is a well-formed SASL error challenge, base64 as sent.
var errorChallenge = base64.StdEncoding.EncodeToString([]byte(`{"status":"401","schemes":"bearer","scope":"mail"}`))

// hostileCase is one way a server streams without end, the listener whose program meets it, and what
// the proxy's log must say.
type hostileCase struct {
	name     string
	protocol string
	mode     string // the local listener's TLS mode (the implicit ones go to the emulator)
	script   script
	log      string
}

var hostileCases = []hostileCase{
	{
		// Port 587-style: the greeting is in clear text, before any TLS.
		name: "smtp greeting of endless 220- lines", protocol: "smtp", mode: config.LocalTLSNone,
		script: streamAfter("", "", "220-"+strings.Repeat("x", 1000)),
		log:    "the server sent a reply longer than 64 KiB",
	},
	{
		name: "smtp EHLO reply of endless 250- lines", protocol: "smtp", mode: config.LocalTLSStartTLS,
		script: streamAfter("220 mail.example ESMTP", "EHLO", "250-X-EXTENSION"),
		log:    "the server sent a reply of more than 256 lines",
	},
	{
		// Every reply within its own bound, but together more than the proxy reads before login.
		name: "smtp replies past the total before login", protocol: "smtp", mode: config.LocalTLSNone,
		script: func(w io.Writer, r *bufio.Reader) []byte {
			big := func(code string) string {
				return strings.Repeat(code+"-"+strings.Repeat("y", 1000)+"\r\n", 60) // 60 KiB
			}
			io.WriteString(w, big("220")+"220 mail.example ESMTP\r\n")
			if !expect(r, "EHLO") {
				return nil
			}
			io.WriteString(w, big("250")+"250 STARTTLS\r\n")
			if !expect(r, "STARTTLS") {
				return nil
			}
			return repeat("220-" + strings.Repeat("z", 1000))
		},
		log: "the server sent more than 128 KiB before the login completed",
	},
	{
		name: "imap untagged lines without end before the tagged answer", protocol: "imap", mode: config.LocalTLSNone,
		script: streamAfter(imapGreeting, "M1 AUTHENTICATE", "* OK still working"),
		log:    "the server sent a reply of more than 256 lines",
	},
	{
		name: "imap SASL challenges without end", protocol: "imap", mode: config.LocalTLSStartTLS,
		script: streamAfter(imapGreeting, "M1 AUTHENTICATE", "+ "+errorChallenge),
		log:    "the server sent more than 4 SASL challenges",
	},
	{
		// 40 KiB a line: within the line bound, far beyond what a challenge is.
		name: "pop3 huge SASL challenges", protocol: "pop", mode: config.LocalTLSNone,
		script: streamAfter("+OK ready", "AUTH", "+ "+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("{}"), 15<<10))),
		log:    "the server sent a SASL challenge longer than 8 KiB",
	},
	{
		name: "pop3 empty challenges without end", protocol: "pop", mode: config.LocalTLSStartTLS,
		script: streamAfter("+OK ready", "AUTH", "+ "),
		log:    "the server sent more than 4 SASL challenges",
	},
}

const imapGreeting = "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready"

// streamAfter is a script that greets (unless greeting is ""), waits for a command starting with cmd
// (unless cmd is ""), and then streams line without end.
func streamAfter(greeting, cmd, line string) script {
	return func(w io.Writer, r *bufio.Reader) []byte {
		if greeting != "" {
			io.WriteString(w, greeting+"\r\n")
		}
		if cmd != "" && !expect(r, cmd) {
			return nil
		}
		return repeat(line)
	}
}

// temporaryLine is the start of each protocol's answer to a login the server failed.
var temporaryLine = map[string]string{
	"imap": "a NO [UNAVAILABLE] The mail server sent more than the proxy accepts",
	"pop":  "-ERR [SYS/TEMP] The mail server sent more than the proxy accepts",
	"smtp": "454 4.7.0 The mail server sent more than the proxy accepts",
}

// TestUpstreamStreamsWithoutEnd: for each way a server can stream without end before the splice, a
// login through the proxy is refused with the protocol's temporary failure while the server is still
// streaming (the proxy hangs up long before the 32 MiB it offers), the proxy's heap does not grow
// with what the server sent, the log names the bound, and a session that was already spliced as well
// as a new login (both through the emulator) carry on.
func TestUpstreamStreamsWithoutEnd(t *testing.T) {
	servers := map[string]*hostile{
		"smtp": newHostile(t, false), // SMTP upstreams on ports other than 465 begin in clear text
		"imap": newHostile(t, true),
		"pop":  newHostile(t, true),
	}
	l := newLab(t, labOptions{mutate: func(f *config.File) {
		trustAlso(t, f, servers["imap"].certPEM, servers["pop"].certPEM)
		for i := range f.Proxy.Listeners {
			if ln := &f.Proxy.Listeners[i]; ln.LocalTLS != config.LocalTLSImplicit {
				ln.Upstream = servers[ln.Protocol].addr
			}
		}
	}})
	other := l.dial(t, "imap", config.LocalTLSImplicit) // to the emulator
	other.login("imap", aliceUser, alicePassword)
	other.check(other.cmd("o SELECT INBOX", "o "), "o OK")

	for _, hc := range hostileCases {
		t.Run(hc.name, func(t *testing.T) {
			h := servers[hc.protocol]
			h.set(hc.script)
			c := l.dial(t, hc.protocol, hc.mode)
			base := heapAlloc()
			sendLogin(c, hc.protocol)
			var end streamed
			select {
			case end = <-h.ends:
			case <-time.After(2 * time.Minute):
				t.Fatal("the hostile server's stream neither ended nor was hung up on in 2 minutes")
			}
			grown := int64(heapAlloc()) - int64(base)
			if end.sent < 0 {
				t.Fatalf("the proxy did not send the server what a login sends; log:\n%s", l.logs.String())
			}
			if !end.hungUp {
				t.Fatalf("the proxy read all %d MiB the server streamed before login (heap grew by %d MiB)", end.sent>>20, grown>>20)
			}
			if grown > 8<<20 {
				t.Fatalf("the heap grew by %d MiB while the server streamed %d MiB", grown>>20, end.sent>>20)
			}
			t.Logf("the proxy hung up after the server had streamed %d KiB; heap growth %d KiB", end.sent>>10, grown>>10)
			answer := ""
			if hc.protocol == "imap" {
				answer = c.until("a ")
			} else {
				answer = c.line()
			}
			c.check(answer, temporaryLine[hc.protocol])
			l.waitLog("protocol="+hc.protocol, "outcome=upstream_unavailable", hc.log)
		})
	}

	other.check(other.cmd("o2 NOOP", "o2 "), "o2 OK")
	for _, proto := range protocols {
		c := l.dial(t, proto, config.LocalTLSImplicit)
		c.login(proto, aliceUser, alicePassword)
	}
}

// sendLogin sends a login in the protocol's password form, without reading the final answer.
func sendLogin(c *client, protocol string) {
	c.t.Helper()
	switch protocol {
	case "imap":
		c.send(fmt.Sprintf("a LOGIN %q %q", aliceUser, alicePassword))
	case "pop":
		c.check(c.cmd("USER "+aliceUser, ""), "+OK")
		c.send("PASS " + alicePassword)
	default:
		c.cmd("EHLO test.example", "250 ")
		c.send("AUTH PLAIN " + plain(aliceUser, alicePassword))
	}
}

// heapAlloc is the live heap: the least of three readings, each after a collection, so that what
// another goroutine (the emulator, the other session, a session of the case before tearing down)
// holds for a moment does not count. What it measures is what stays: against a server streaming
// 32 MiB and held open, a reader that kept what it read would hold megabytes (the test's bound is
// 8 MiB), where a bounded session holds at most its 128 KiB before the splice and its TLS buffers.
func heapAlloc() uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		least = min(least, ms.HeapAlloc)
	}
	return least
}

// trustAlso makes the lab's account trust the CAs of fake servers besides the emulator's.
func trustAlso(t *testing.T, f *config.File, certPEMs ...[]byte) {
	t.Helper()
	pem, err := os.ReadFile(f.Accounts["daemon"].CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range certPEMs {
		pem = append(pem, p...)
	}
	all := filepath.Join(t.TempDir(), "cas.pem")
	if err := os.WriteFile(all, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	f.Accounts["daemon"].CAFile = all
}
