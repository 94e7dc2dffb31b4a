package exchange

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// Config configures the mail servers.
type Config struct {
	World *world.Live // read at each command
	// Events records every login accepted or refused and every message delivered (nil: none).
	Events *events.Log
	// Store holds the mailboxes; nil makes a new one. Every mailbox of the World is created in it.
	Store *mailstore.Store
	// Keys verify tokens: the identity server (PublicKey, KeyID).
	Keys Keys
	// TLS holds the server certificate (the emulator's CA signs it).
	TLS *tls.Config
	// Host is the address to listen on (default 127.0.0.1).
	Host string
	// Ports fixes listeners' ports by name (AddrIMAP, AddrIMAPStartTLS, AddrPOP, AddrSMTP); a
	// listener not named takes a free port.
	Ports map[string]int
	Now   func() time.Time // nil: time.Now
	Log   *slog.Logger     // nil: discard
}

// Listener names, the keys of Addrs (and of the emulator's MailAddrs).
const (
	AddrIMAP         = "imap"          // implicit TLS, as outlook.office365.com:993
	AddrIMAPStartTLS = "imap-starttls" // plain with STARTTLS, as :143
	AddrPOP          = "pop"           // implicit TLS, as :995
	AddrSMTP         = "smtp"          // plain with STARTTLS, submission as smtp.office365.com:587
)

// Servers are the running IMAP, POP3 and SMTP servers.
type Servers struct {
	Authorizer *Authorizer
	Store      *mailstore.Store

	live  *world.Live
	tls   *tls.Config
	now   func() time.Time
	log   *slog.Logger
	front frontEnd
	addrs map[string]string
	imap  *imapBackend
	chaos chaos
	quit  chan struct{} // closed by Close: injected latency ends

	mu     sync.Mutex
	lns    []net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on a free port per listener and serves until Close.
func Start(cfg Config) (*Servers, error) {
	if cfg.World == nil || cfg.Keys == nil || cfg.TLS == nil {
		return nil, errors.New("exchange: World, Keys and TLS are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Store == nil {
		cfg.Store = mailstore.New(cfg.Now)
	}
	for _, t := range cfg.World.Load().Tenants {
		for _, u := range t.Users {
			cfg.Store.Ensure(u.UPN)
		}
		for _, m := range t.SharedMailboxes {
			cfg.Store.Ensure(m.Address)
		}
	}
	tlsCfg := cfg.TLS.Clone()
	if tlsCfg.MinVersion < tls.VersionTLS12 {
		tlsCfg.MinVersion = tls.VersionTLS12
	}
	s := &Servers{
		Authorizer: NewAuthorizer(cfg.World, cfg.Keys, cfg.Now, cfg.Log),
		Store:      cfg.Store,
		live:       cfg.World, tls: tlsCfg, now: cfg.Now, log: cfg.Log,
		front: newFrontEnd(), addrs: map[string]string{}, conns: map[net.Conn]struct{}{}, quit: make(chan struct{}),
	}
	s.Authorizer.events = cfg.Events
	s.imap = newIMAPBackend(s)
	for _, l := range []struct {
		name     string
		implicit bool
		serve    func(net.Conn)
	}{
		{AddrIMAP, true, func(c net.Conn) { s.serveIMAP(c, false) }},
		{AddrIMAPStartTLS, false, func(c net.Conn) { s.serveIMAP(c, true) }},
		{AddrPOP, true, s.servePOP},
		{AddrSMTP, false, s.serveSMTP},
	} {
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Ports[l.name])))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("exchange: listen on %s: %w", cfg.Host, err)
		}
		s.addrs[l.name] = ln.Addr().String()
		s.mu.Lock()
		s.lns = append(s.lns, ln)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.accept(ln, l.name, l.implicit, l.serve)
	}
	s.log.Info("exchange: mail servers listening", "imap", s.addrs[AddrIMAP], "imap_starttls", s.addrs[AddrIMAPStartTLS],
		"pop", s.addrs[AddrPOP], "smtp", s.addrs[AddrSMTP], "server", s.front.FQDN())
	return s, nil
}

// Addrs are the listeners' host:port addresses by name (AddrIMAP, AddrIMAPStartTLS, AddrPOP, AddrSMTP).
func (s *Servers) Addrs() map[string]string {
	out := make(map[string]string, len(s.addrs))
	for k, v := range s.addrs {
		out[k] = v
	}
	return out
}

// ServerName is the front-end server the emulator pretends to be (e.g. AM0PR06CA0126.eurprd06.prod.outlook.com).
func (s *Servers) ServerName() string { return s.front.FQDN() }

// accept serves the listener's connections; implicit ones start with TLS, under a byte limit that
// an injected fault may set (disconnect_after counts the bytes on the wire).
func (s *Servers) accept(ln net.Listener, name string, implicit bool, serve func(net.Conn)) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			s.log.Error("exchange: accept failed", "listener", name, "err", err)
			return
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			defer func() {
				if v := recover(); v != nil {
					s.log.Error("exchange: panic serving a connection", "listener", name, "panic", fmt.Sprint(v))
				}
			}()
			conn := s.connFault(name, c)
			if implicit {
				conn = tls.Server(conn, s.tls)
			}
			serve(conn)
		}()
	}
}

func (s *Servers) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Servers) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// Close stops every listener, closes every connection and waits for their goroutines.
func (s *Servers) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.quit)
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	if s.imap != nil {
		s.imap.close()
	}
	s.wg.Wait()
	return nil
}

// ---- lines -------------------------------------------------------------------------------------

// errLineTooLong is a line longer than the protocol's bound; the connection is then closed.
var errLineTooLong = errors.New("line too long")

// readLine reads a CRLF- (or LF-) terminated line of at most max bytes, without its terminator.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > max {
		return nil, errLineTooLong
	}
	return line, nil
}

// Timeouts: what a client may take for one command (Exchange's IMAP autologout is 30 minutes; POP3
// allows 10, SMTP 5 per RFC 5321 §4.5.3.2), and the TLS handshake.
const (
	commandTimeout   = 10 * time.Minute
	handshakeTimeout = 30 * time.Second
	writeTimeout     = 2 * time.Minute
)

// handshake completes a server-side TLS handshake within handshakeTimeout.
func handshake(c *tls.Conn) error {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	return c.Handshake()
}
