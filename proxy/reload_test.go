package proxy_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/testpki"
)

// dialAt connects to a plain listener at addr (which may be one a reload removed) and reads its
// greeting.
func dialAt(t *testing.T, protocol, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("connecting to the %s listener at %s: %v", protocol, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	cl.check(cl.line(), map[string]string{"imap": "* OK", "pop": "+OK", "smtp": "220 "}[protocol])
	return cl
}

// refuses reports whether nothing listens at addr any more.
func refuses(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// freeAddr is a loopback address nothing listens on now (a test needs a fixed port to configure).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// otherCert writes a second local certificate (another CA) and returns its files and a pool
// trusting only it.
func otherCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, pool, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "other.pem"), filepath.Join(dir, "other-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// servesCert reports whether the implicit-TLS listener at addr presents a certificate pool trusts.
func servesCert(t *testing.T, addr string, pool *x509.CertPool) bool {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		if !errors.As(err, new(x509.UnknownAuthorityError)) {
			t.Fatalf("TLS to %s failed for another reason than the certificate: %v", addr, err)
		}
		return false
	}
	c.Close()
	return true
}

// withoutListener is cfg's listeners less the plain one for protocol, and the implicit IMAP one
// pointed at certFile/keyFile.
func withoutListener(cfg *config.Proxy, protocol, certFile, keyFile string) []config.Listener {
	var out []config.Listener
	for _, ln := range cfg.Listeners {
		if ln.Protocol == protocol && ln.LocalTLS == config.LocalTLSNone {
			continue
		}
		if ln.Protocol == config.ProtocolIMAP && ln.LocalTLS == config.LocalTLSImplicit {
			ln.TLSCert, ln.TLSKey = certFile, keyFile
		}
		out = append(out, ln)
	}
	return out
}

// TestReloadFailureChangesNothing: a reload that removes a user and a listener, changes a
// certificate, adds a listener it can bind and one on an address already taken fails as a whole.
// The error names the address and the reason; the removed user still logs in through the removed
// listener; the old certificate is still served; the new listener that was bound is released.
func TestReloadFailureChangesNothing(t *testing.T) {
	l := newLab(t, labOptions{})
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	before := l.srv.Addrs()
	oldPOP := l.addr("pop", config.LocalTLSNone)
	implicitIMAP := l.addr("imap", config.LocalTLSImplicit)
	certFile, keyFile, otherPool := otherCert(t, t.TempDir())
	bindable := freeAddr(t)

	next := *l.cfg.Proxy
	next.Users = map[string]*config.ProxyUser{"carol": {Account: "daemon-bob", PasswordHash: hashOf(t, "carol-password")}}
	next.Listeners = append(withoutListener(l.cfg.Proxy, "pop", certFile, keyFile),
		config.Listener{Protocol: "pop", Listen: bindable, LocalTLS: config.LocalTLSNone},
		config.Listener{Protocol: "smtp", Listen: taken.Addr().String(), LocalTLS: config.LocalTLSNone})
	err = l.srv.Reload(&next, l.mgr)
	if err == nil {
		t.Fatal("a reload with a listener on a taken address succeeded")
	}
	for _, want := range []string{taken.Addr().String(), "address already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the reload's error %q does not say %q", err, want)
		}
	}

	if after := l.srv.Addrs(); !maps.Equal(before, after) {
		t.Errorf("the failed reload changed the listeners:\nbefore %v\nafter  %v", before, after)
	}
	c := dialAt(t, "pop", oldPOP)
	c.login("pop", aliceUser, alicePassword)
	c.check(c.cmd("STAT", ""), "+OK")
	c = l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", aliceUser, alicePassword)
	c = l.dial(t, "imap", config.LocalTLSNone)
	c.check(c.attempt("imap", "carol", "carol-password"), "a NO [AUTHENTICATIONFAILED]")
	if !servesCert(t, implicitIMAP, l.pool) || servesCert(t, implicitIMAP, otherPool) {
		t.Error("the failed reload changed the implicit-TLS listener's certificate")
	}
	ln, err := net.Listen("tcp", bindable)
	if err != nil {
		t.Errorf("the failed reload kept the new listener it had bound on %s: %v", bindable, err)
	} else {
		ln.Close()
	}
}

// TestReloadAppliesEverything: a reload that succeeds swaps users, removes a listener (its open
// session goes on), moves one to another address, gives one a new certificate on the same socket,
// and turns a fixed address from IMAP to POP3; listeners it leaves alone keep their sockets.
func TestReloadAppliesEverything(t *testing.T) {
	l, fixed, first := labWithFixedIMAP(t)
	dialAt(t, "imap", fixed)

	// Two plain IMAP listeners now, so ask by the whole key.
	plainIMAP := l.srv.Addrs()["imap none 127.0.0.1:0"]
	oldPOP := l.addr("pop", config.LocalTLSNone)
	oldSMTP := l.addr("smtp", config.LocalTLSNone)
	implicitIMAP := l.addr("imap", config.LocalTLSImplicit)
	open := dialAt(t, "pop", oldPOP)
	open.login("pop", aliceUser, alicePassword)
	certFile, keyFile, otherPool := otherCert(t, t.TempDir())

	next := first
	next.Users = map[string]*config.ProxyUser{"carol": {Account: "daemon-bob", PasswordHash: hashOf(t, "carol-password")}}
	next.Listeners = nil
	for _, ln := range withoutListener(&first, "pop", certFile, keyFile) {
		switch {
		case ln.Listen == fixed:
			ln.Protocol = "pop"
		case ln.Protocol == "smtp" && ln.LocalTLS == config.LocalTLSNone:
			ln.Listen = "localhost:0" // another address than 127.0.0.1:0
		}
		next.Listeners = append(next.Listeners, ln)
	}
	if err := l.srv.Reload(&next, l.mgr); err != nil {
		t.Fatal(err)
	}

	open.check(open.cmd("STAT", ""), "+OK") // a session of a removed listener goes on
	if !refuses(oldPOP) {
		t.Error("the removed POP3 listener still accepts")
	}
	if _, ok := l.srv.Addrs()["pop none 127.0.0.1:0"]; ok {
		t.Error("Addrs still lists the removed POP3 listener")
	}
	if !refuses(oldSMTP) {
		t.Error("the SMTP listener that moved still accepts at its old address")
	}
	if newSMTP := l.addr("smtp", config.LocalTLSNone); newSMTP == oldSMTP {
		t.Errorf("the SMTP listener that moved is still at %s", newSMTP)
	} else {
		dialAt(t, "smtp", newSMTP)
	}
	if got := l.addr("imap", config.LocalTLSNone); got != plainIMAP {
		t.Errorf("the unchanged IMAP listener moved from %s to %s (its socket was not kept)", plainIMAP, got)
	}
	if got := l.addr("imap", config.LocalTLSImplicit); got != implicitIMAP {
		t.Errorf("the implicit-TLS IMAP listener moved from %s to %s (its socket was not kept)", implicitIMAP, got)
	}
	if !servesCert(t, implicitIMAP, otherPool) || servesCert(t, implicitIMAP, l.pool) {
		t.Error("the implicit-TLS listener does not serve the reloaded certificate")
	}
	c := dialAt(t, "pop", fixed)
	c.login("pop", "carol", "carol-password")
	c = l.dial(t, "imap", config.LocalTLSNone)
	c.login("imap", "carol", "carol-password")
	c = l.dial(t, "imap", config.LocalTLSNone)
	c.check(c.attempt("imap", aliceUser, alicePassword), "a NO [AUTHENTICATIONFAILED]")
}

// TestReloadSamePortOtherSpelling: moving a listener to another spelling of its own port
// (127.0.0.1:P to 0.0.0.0:P) cannot bind while the old socket holds the port; the reload changes
// nothing and its error says that the proxy's own listener holds the port and what to do.
func TestReloadSamePortOtherSpelling(t *testing.T) {
	l, fixed, first := labWithFixedIMAP(t)
	_, port, _ := net.SplitHostPort(fixed)
	next := first
	next.Listeners = append([]config.Listener(nil), first.Listeners...)
	next.Listeners[len(next.Listeners)-1].Listen = "0.0.0.0:" + port
	err := l.srv.Reload(&next, l.mgr)
	if err == nil || !strings.Contains(err.Error(), "the proxy's own imap listener on "+fixed+" holds that port") {
		t.Fatalf("moving a listener to 0.0.0.0 on its own port: %v, want an error naming the proxy's own listener", err)
	}
	dialAt(t, "imap", fixed)
}

// labWithFixedIMAP is a lab to which a reload has added a plain IMAP listener on a fixed free address;
// first is the configuration that reload applied.
func labWithFixedIMAP(t *testing.T) (l *lab, fixed string, first config.Proxy) {
	t.Helper()
	l = newLab(t, labOptions{})
	fixed = freeAddr(t)
	first = *l.cfg.Proxy
	first.Listeners = append(append([]config.Listener(nil), l.cfg.Proxy.Listeners...),
		config.Listener{Protocol: "imap", Listen: fixed, LocalTLS: config.LocalTLSNone})
	if err := l.srv.Reload(&first, l.mgr); err != nil {
		t.Fatal(err)
	}
	return l, fixed, first
}
