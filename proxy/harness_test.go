package proxy_test

// The harness every proxy test and benchmark shares: the emulator (a local Microsoft 365), the
// configuration it writes (accounts and the [proxy] section), one listener per protocol and local
// TLS mode on free loopback ports, and the proxy's logs captured for assertions.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/passhash"
	"github.com/mailoauth/mailoauth/internal/testpki"
	"github.com/mailoauth/mailoauth/proxy"
)

// The local users of every lab.
const (
	aliceUser     = "alice@contoso.test" // → account daemon (the emulator's [proxy] section)
	alicePassword = emulator.ProxyPassword
	// Any other address of contoso.test, by the domain catch-all → account daemon, opening that
	// address's mailbox.
	domainPassword = "domain-password"
)

var protocols = []string{config.ProtocolIMAP, config.ProtocolPOP, config.ProtocolSMTP}
var tlsModes = []string{config.LocalTLSNone, config.LocalTLSImplicit, config.LocalTLSStartTLS}

type labOptions struct {
	world  *world.World         // nil: the default world
	proxy  proxy.Options        // Log is set by the lab
	mutate func(f *config.File) // changes to the configuration before the proxy starts
	auth   auth.Options         // the accounts' options (a test's clock)
}

type lab struct {
	tb   testing.TB
	emu  *emulator.Emulator
	dir  string
	cfg  *config.File
	mgr  *auth.Manager
	srv  *proxy.Server
	logs *syncBuffer
	// Local TLS: the certificate files the listeners use, and a pool trusting them.
	certFile, keyFile string
	pool              *x509.CertPool
}

var (
	domainHashOnce sync.Once
	domainHash     string
)

func newLab(tb testing.TB, o labOptions) *lab {
	tb.Helper()
	el := emulatortest.Start(tb, emulator.Options{World: o.world, AutoApprove: world.Alice})
	l := &lab{tb: tb, emu: el.E, dir: el.Dir, cfg: el.Config, logs: &syncBuffer{}}
	certPEM, keyPEM, pool, err := testpki.New()
	if err != nil {
		tb.Fatal(err)
	}
	l.certFile, l.keyFile, l.pool = filepath.Join(l.dir, "local.pem"), filepath.Join(l.dir, "local-key.pem"), pool
	if err := os.WriteFile(l.certFile, certPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(l.keyFile, keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	domainHashOnce.Do(func() { domainHash, err = passhash.Hash(domainPassword) })
	if err != nil {
		tb.Fatal(err)
	}
	p := l.cfg.Proxy
	p.Listeners = nil
	for _, proto := range protocols {
		for _, mode := range tlsModes {
			ln := config.Listener{Protocol: proto, Listen: "127.0.0.1:0", LocalTLS: mode}
			if mode != config.LocalTLSNone {
				ln.TLSCert, ln.TLSKey = l.certFile, l.keyFile
			}
			p.Listeners = append(p.Listeners, ln)
		}
	}
	p.Domains = map[string]*config.ProxyDomain{"contoso.test": {Account: "daemon", PasswordHash: domainHash}}
	if o.mutate != nil {
		o.mutate(l.cfg)
	}
	if o.proxy.FailureDelay == 0 {
		// Many tests send wrong passwords from 127.0.0.1; only the failure delay's own tests wait.
		o.proxy.FailureDelay, o.proxy.FailureDelayMax = time.Millisecond, time.Millisecond
	}
	l.mgr = auth.New(l.cfg, o.auth)
	o.proxy.Log = slog.New(slog.NewTextHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if l.srv, err = proxy.New(l.cfg.Proxy, l.mgr, o.proxy); err != nil {
		tb.Fatal(err)
	}
	if err := l.srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.srv.Shutdown(ctx)
	})
	return l
}

// addr is where the listener for protocol and local TLS mode is bound.
func (l *lab) addr(protocol, mode string) string {
	l.tb.Helper()
	for k, a := range l.srv.Addrs() {
		if strings.HasPrefix(k, protocol+" "+mode+" ") {
			return a
		}
	}
	l.tb.Fatalf("no %s listener with local TLS %s", protocol, mode)
	return ""
}

// clientTLS is what a program trusting the proxy's local certificate uses.
func (l *lab) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: l.pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// syncBuffer collects logs written by the proxy's goroutines while a test reads them.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed and replaced at every write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written != nil {
		close(s.written)
		s.written = nil
	}
	return s.b.Write(p)
}

// next returns a channel closed at the next write.
func (s *syncBuffer) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written == nil {
		s.written = make(chan struct{})
	}
	return s.written
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitLog waits until the proxy's logs contain every one of parts on one line, and returns that line.
func (l *lab) waitLog(parts ...string) string {
	l.tb.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		written := l.logs.next() // before reading: a line written meanwhile is not missed
		for _, line := range strings.Split(l.logs.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return line
			}
		}
		select {
		case <-written:
		case <-timeout.C:
			l.tb.Fatalf("no log line with %q within %v; logs:\n%s", parts, waitTimeout, l.logs.String())
			return ""
		}
	}
}

// waitTimeout bounds a test's wait for something the proxy owes it (an answer, a log line, a close).
// It only ends a test that has already failed, so it is long: a loaded CI machine (two CPU-bound
// processes beside -race) can take seconds for what takes milliseconds on an idle one. It stays
// below the lab's login timeout (2 minutes), so that a stuck login shows as this test's failure.
const waitTimeout = time.Minute
