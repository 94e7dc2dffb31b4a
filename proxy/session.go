package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/dial"
	"github.com/mailoauth/mailoauth/doctor/catalog"
	"github.com/mailoauth/mailoauth/token"
)

// session is one program's connection, from accept to close.
type session struct {
	srv  *Server
	l    *listener
	cfg  *config.Listener // the listener's configuration when the session began
	set  *settings        // the users and accounts, as of the last login attempt
	id   uint64
	log  *slog.Logger
	conn net.Conn // the program's connection; a *tls.Conn once TLS is on
	r    *bufio.Reader
	in   intake // what the program sent before login, against the bounds of prelogin.go
	tls  bool
	// hello is the name the program gave in SMTP's EHLO, passed on upstream.
	hello string
	// ctx ends at the login deadline until the session is spliced.
	ctx    context.Context
	cancel context.CancelFunc

	// phase guards spliced and answering against the login deadline's timer.
	phase     sync.Mutex
	spliced   bool        // bytes are being copied: the login deadline no longer applies
	answering bool        // a login is under way (password, token, server), until the program has its answer
	grace     *time.Timer // closes the session answerGrace after the deadline caught a login
	closeOnce sync.Once
	closed    chan struct{} // closed by close()
	up        net.Conn      // upstream, once dialed; closed with the session
	upMu      sync.Mutex
	// meter is the raw connection of a listener via Graph (gateway.go); nil for the others.
	meter *meter
}

func newSession(s *Server, l *listener, c net.Conn) *session {
	id := s.nextID.Add(1)
	cfg := l.cfg.Load()
	sess := &session{
		srv: s, l: l, cfg: cfg, set: s.settings.Load(), id: id, conn: c, closed: make(chan struct{}),
		log: s.opts.Log.With("conn", id, "protocol", cfg.Protocol, "remote", c.RemoteAddr().String()),
	}
	sess.in.limits = limitsFor(s.opts.MaxLine)
	if cfg.Via == config.ViaGraph {
		sess.meter = newMeter(sess, c)
		sess.conn = sess.meter
	}
	sess.r = bufio.NewReaderSize(sess.conn, 4096)
	return sess
}

func (s *session) close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.conn.Close()
		s.upMu.Lock()
		if s.up != nil {
			s.up.Close()
		}
		s.upMu.Unlock()
	})
}

func (s *session) setUpstream(c net.Conn) {
	s.upMu.Lock()
	s.up = c
	s.upMu.Unlock()
}

func (s *session) run() {
	m := s.srv.Metrics
	m.sessionStart(s.cfg.Protocol)
	defer m.sessionEnd(s.cfg.Protocol)
	defer s.close()
	s.ctx, s.cancel = context.WithTimeout(context.Background(), s.srv.opts.LoginTimeout)
	defer s.cancel()
	// Everything before the splice must finish by the login deadline, however slowly the program
	// sends: a connection that never logs in cannot hold a slot for ever.
	stop := context.AfterFunc(s.ctx, func() {
		s.phase.Lock()
		defer s.phase.Unlock()
		switch {
		case s.spliced:
		case s.answering:
			// What the login waits on (the password check's turn, the token, the server) fails on
			// this same deadline: leave the program long enough to be told so in its protocol, rather
			// than just closing on it — and close after that whatever still holds the login up.
			_ = s.conn.SetDeadline(time.Now().Add(answerGrace))
			s.grace = time.AfterFunc(answerGrace, func() {
				s.phase.Lock()
				defer s.phase.Unlock()
				if !s.spliced {
					s.close()
				}
			})
		default:
			s.close()
		}
	})
	defer stop()
	defer func() {
		s.phase.Lock()
		if s.grace != nil {
			s.grace.Stop()
		}
		s.phase.Unlock()
	}()
	if localTLSMode(s.cfg) == config.LocalTLSImplicit {
		tc := tls.Server(s.conn, s.l.tlsConfig())
		if err := tc.HandshakeContext(s.ctx); err != nil {
			s.log.Info("local TLS handshake failed", "err", err)
			return
		}
		s.useTLS(tc)
	}
	var err error
	switch {
	case s.cfg.Via == config.ViaGraph && s.cfg.Protocol != config.ProtocolPOP:
		err = s.gatewaySession() // POP3's login is the proxy's own, whichever the listener
	case s.cfg.Protocol == config.ProtocolIMAP:
		err = s.imap()
	case s.cfg.Protocol == config.ProtocolPOP:
		err = s.pop3()
	case s.cfg.Protocol == config.ProtocolSMTP:
		err = s.smtp()
	}
	if le, ok := asLimit(err); ok {
		s.closeOverLimit(le)
		return
	}
	switch {
	case err == nil, quietEnd(err):
		s.log.Debug("session closed")
	default:
		s.log.Info("session closed", "err", err)
	}
}

func (s *session) useTLS(tc *tls.Conn) {
	s.phase.Lock() // the login deadline's timer reads s.conn
	s.conn, s.tls = tc, true
	s.phase.Unlock()
	s.r = bufio.NewReaderSize(tc, 4096)
}

// starttls upgrades the program's connection after the protocol's go-ahead was written.
func (s *session) starttls() error {
	if s.r.Buffered() > 0 {
		// Bytes sent after STARTTLS before the handshake would be read as if protected: the
		// command-injection attack of RFC 3207 §6 / CVE-2011-0411.
		return errors.New("data pipelined after STARTTLS; closing")
	}
	tc := tls.Server(s.conn, s.l.tlsConfig())
	if err := tc.HandshakeContext(s.ctx); err != nil {
		return fmt.Errorf("local TLS handshake failed: %w", err)
	}
	s.useTLS(tc)
	return nil
}

// mayLogin reports whether the program may send a password now: not before TLS on a STARTTLS
// listener.
func (s *session) mayLogin() bool {
	return s.tls || localTLSMode(s.cfg) != config.LocalTLSStartTLS
}

// readLine reads one line of the command being read, without its CRLF: at most MaxLine bytes, and
// counted against the command's and the session's bounds (prelogin.go). An overlong line is refused
// as soon as it is known to be one, without reading the rest of it.
func (s *session) readLine() (string, error) {
	var buf []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(buf)+len(chunk) > s.in.line+2 {
			return "", &limitError{kind: limitLine, max: s.in.line}
		}
		if lerr := s.in.took(len(chunk)); lerr != nil {
			return "", lerr
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, chunk...)
			continue
		}
		if err != nil {
			return "", err
		}
		if lerr := s.in.endLine(); lerr != nil {
			return "", lerr
		}
		if buf == nil {
			return strings.TrimRight(string(chunk), "\r\n"), nil // the usual line: one copy
		}
		return strings.TrimRight(string(append(buf, chunk...)), "\r\n"), nil
	}
}

func (s *session) writeLine(line string) error {
	_, err := io.WriteString(s.conn, line+"\r\n")
	return err
}

// Why a login failed, as the program is told and as counted.
type outcome string

const (
	outcomeOK          outcome = "ok"
	outcomeBadPassword outcome = "bad_password"
	outcomeUnknownUser outcome = "unknown_user"
	outcomeConfig      outcome = "config_error"
	outcomeToken       outcome = "token_error"
	outcomeUnavailable outcome = "upstream_unavailable"
	outcomeRefused     outcome = "upstream_refused"
	outcomeTimeout     outcome = "login_timeout"
	outcomeBadUserName outcome = "bad_user_name"
)

// deadlineErr says so when err is the login deadline running out, which the error itself does only as
// "context deadline exceeded".
func (s *session) deadlineErr(err error) error {
	var ng *dial.NoGreetingError
	if errors.As(err, &ng) {
		return err // a timeout of its own, which says what it means
	}
	if errors.Is(s.ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within the login timeout (%v; [proxy] login_timeout): %w", s.srv.opts.LoginTimeout, err)
	}
	return err
}

// answerGrace is how long a program whose login ran into the login deadline has to read the answer.
const answerGrace = 5 * time.Second

func (s *session) setAnswering(v bool) {
	s.phase.Lock()
	s.answering = v
	s.phase.Unlock()
}

// loginError is a failed login: what to tell the program (no secret, no internal detail it cannot
// act on) and whether it is worth retrying later.
type loginError struct {
	outcome   outcome
	temporary bool
	msg       string
}

func (e *loginError) Error() string { return e.msg }

// login checks the local password, gets the account's token and authenticates upstream. On success
// the upstream connection is ready to splice and ok is the server's success text.
func (s *session) login(user, password string, up upstreamProtocol) (conn *upstreamConn, ok string, err error) {
	m := s.srv.Metrics
	a, mailbox, log, lerr := s.checkUser(user, password)
	if lerr != nil {
		return nil, "", lerr
	}
	addr := s.cfg.Upstream
	if addr == "" {
		addr = a.Server(s.cfg.Protocol)
	}
	log = log.With("upstream", addr)

	tok, ts, lerr := s.token(user, a, token.Exchange, log)
	if lerr != nil {
		return nil, "", lerr
	}

	hello := s.hello
	if hello == "" {
		hello = s.srv.opts.Hostname
	}
	uc, derr := dialUpstream(s.ctx, up, addr, s.srv.upstreamTLSConfig(a), hello)
	if derr != nil {
		derr = s.deadlineErr(derr)
		m.login(s.cfg.Protocol, string(outcomeUnavailable))
		log.Error("login failed: upstream unavailable", "outcome", outcomeUnavailable, "err", derr)
		return nil, "", &loginError{outcome: outcomeUnavailable, temporary: true, msg: failureMsg(derr, "The mail server cannot be reached; see the proxy log.")}
	}
	s.setUpstream(uc.conn)
	mech := a.Mechanism()
	var sent *token.Token
	retried, aerr2 := token.RetryRefused(s.ctx, staticThenRefresh{tok, ts}, func(t *token.Token) error {
		sent = t
		var e error
		ok, e = up.authenticate(uc, mech, mailbox, t.AccessToken)
		return e
	}, isRefusal)
	if retried {
		m.tokenFetch(nil, nil)
	}
	if aerr2 != nil {
		// This connection is done with; the program may try again, on a new one.
		uc.conn.Close()
		s.setUpstream(nil)
		var r *refusal
		if errors.As(aerr2, &r) {
			m.login(s.cfg.Protocol, string(outcomeRefused))
			// The doctor's catalogue says why, from the server's words and the token's claims.
			claims, _ := catalog.ParseClaims(sent.AccessToken)
			f := catalog.Refusal(catalog.For(a), s.cfg.Protocol, r.said, claims, time.Now())
			attrs := []any{"outcome", outcomeRefused, "server_said", oneLine(r.said), "finding", f.Code, "cause", f.Cause, "fix", f.Fix}
			msg := "The mail server refused the account's token: " + f.Cause + " (" + f.Code + ")"
			log.Error("login failed: upstream refused the token", attrs...)
			s.refused(user, a.Name(), outcomeRefused, f.Code, f.Cause+" "+f.Fix)
			return nil, "", &loginError{outcome: outcomeRefused, msg: oneLine(msg)}
		}
		m.login(s.cfg.Protocol, string(outcomeUnavailable))
		log.Error("login failed: upstream failed during authentication", "outcome", outcomeUnavailable, "err", s.deadlineErr(aerr2))
		return nil, "", &loginError{outcome: outcomeUnavailable, temporary: true, msg: failureMsg(aerr2, "The mail server failed during login; see the proxy log.")}
	}
	m.login(s.cfg.Protocol, string(outcomeOK))
	log.Info("logged in", "mechanism", mech, "mailbox", mailbox, "refreshed", retried)
	return uc, ok, nil
}

// checkUser runs the steps every login shares, upstream or through the Graph gateway: its source's
// failure delay, the user name's syntax, the password, and the user map. It returns the account the
// user maps to, the mailbox to open, and a logger naming both.
func (s *session) checkUser(user, password string) (a *auth.Account, mailbox string, log *slog.Logger, err error) {
	m := s.srv.Metrics
	// A source that has failed waits here, before any check: see penalties.
	src, key := sourceOf(s.conn.RemoteAddr())
	turn, werr := s.srv.verifier.penalties.await(s.ctx, s.closed, key)
	if werr != nil {
		// Not a refusal: no password was checked, so the program is told to try again, and nothing
		// is counted against the source (a person behind a guesser's address may have it right).
		m.login(s.cfg.Protocol, string(outcomeTimeout))
		s.log.Warn("login failed: the login timeout passed while the login waited for its source's failure delay", "source", src, "outcome", outcomeTimeout, "login_timeout", s.srv.opts.LoginTimeout)
		return nil, "", nil, &loginError{outcome: outcomeTimeout, temporary: true, msg: msgBusy}
	}
	if why := badUserName(user); why != "" {
		// Refused on its syntax alone, before the password check: such a name could carry SASL fields
		// of its own upstream. The program is told, and its source slowed down, as for a wrong password.
		s.refuse(turn, src, outcomeBadUserName, quotedUserName(user), why)
		return nil, "", nil, &loginError{outcome: outcomeBadUserName, msg: msgBadUserName}
	}
	log = s.log.With("user", user)
	s.set = s.srv.settings.Load() // a reload since the connection began applies to this login
	account, hash, mailbox, known := s.set.lookup(user)
	good, verr := s.srv.verifier.verify(s.ctx, hash, password)
	if verr != nil {
		// Still queued for a password check at the login deadline: a flood of logins.
		turn.done()
		m.login(s.cfg.Protocol, string(outcomeTimeout))
		log.Warn("login failed: the login timeout passed while the password check waited for its turn", "outcome", outcomeTimeout, "login_timeout", s.srv.opts.LoginTimeout)
		return nil, "", nil, &loginError{outcome: outcomeTimeout, temporary: true, msg: msgBusy}
	}
	if !good {
		o := outcomeBadPassword
		reason := "wrong password"
		if !known {
			o, reason = outcomeUnknownUser, "unknown user: add it under [proxy.users] (or its domain under [proxy.domains])"
		}
		if f, ok := catalog.SharedMailboxSyntax(user); ok && !known {
			reason = f.Cause + ": " + f.Fix
		}
		s.refuse(turn, src, o, user, reason)
		// The program is told the same in both cases, so that user names cannot be probed.
		return nil, "", nil, &loginError{outcome: o, msg: "Authentication failed: wrong user name or password."}
	}
	turn.succeeded()
	log = log.With("account", account)
	a, aerr := s.set.accounts.Account(account)
	if aerr != nil {
		m.login(s.cfg.Protocol, string(outcomeConfig))
		log.Error("login failed: account unusable", "outcome", outcomeConfig, "err", aerr)
		s.refused(user, account, outcomeConfig, "", aerr.Error())
		return nil, "", nil, &loginError{outcome: outcomeConfig, temporary: true, msg: "The proxy's account for this user is misconfigured; see the proxy log."}
	}
	if mailbox == "" {
		mailbox = a.Mailbox()
	}
	return a, mailbox, log, nil
}

// token gets the account's token for r. A cached one costs microseconds; a refresh is shared by
// every session of the account (auth's single flight) and holds up no other account's sessions.
func (s *session) token(user string, a *auth.Account, r token.Resource, log *slog.Logger) (*token.Token, token.Source, error) {
	m := s.srv.Metrics
	ts := a.TokenSource(r)
	tok, terr := ts.Token(s.ctx)
	m.tokenFetch(tok, terr)
	if terr != nil {
		m.login(s.cfg.Protocol, string(outcomeToken))
		log.Error("login failed: no token", "outcome", outcomeToken, "resource", r, "err", s.deadlineErr(terr))
		s.refusedToken(user, a, terr)
		msg := "The proxy cannot get a token for this account; see the proxy log."
		if errors.Is(terr, token.ErrLoginRequired) {
			msg = "The proxy's account needs a new sign-in (mailoauth login " + a.Name() + ")."
		}
		return nil, nil, &loginError{outcome: outcomeToken, temporary: true, msg: msg}
	}
	return tok, ts, nil
}

// msgBusy is the answer to a login whose deadline passed before its password could be checked.
const msgBusy = "The proxy is busy; try again."

// refuse counts and logs a refused login (outcome o) and records the failure against its source,
// whose next login waits the delay logged here. The source comes before every attribute a program
// chooses, for fail2ban (docs/proxy.md).
func (s *session) refuse(t *turn, src string, o outcome, user, reason string) {
	s.srv.Metrics.login(s.cfg.Protocol, string(o))
	delay := t.failed(time.Now())
	s.log.Warn("login refused", "source", src, "outcome", o, "user", user, "reason", reason, "delay", delay)
	s.refused(user, "", o, "", reason)
}

// reply is how a protocol answers a login: its success line from the server's, its refusal line,
// and a last word before closing after too many failures ("" for none).
type reply struct {
	success func(ok string) string
	refuse  func(le *loginError) string
	bye     string
}

// answerLogin logs in and answers the program. On success it splices and done is true (the session
// is over when it returns); after maxFailures refusals done is true too.
func (s *session) answerLogin(user, password string, up upstreamProtocol, failures *int, r reply) (done bool, err error) {
	// From here until the program has its answer, the login deadline leaves it time to be told.
	s.setAnswering(true)
	defer s.setAnswering(false)
	uc, ok, lerr := s.login(user, password, up)
	if lerr != nil {
		return s.answerRefusal(lerr, failures, r)
	}
	uc.ready()
	if err := s.writeLine(r.success(ok)); err != nil {
		return true, err
	}
	return true, s.splice(uc)
}

// answerRefusal tells the program its login was refused; done is true when the connection has no
// login left (past the login deadline, or after maxFailures refusals).
func (s *session) answerRefusal(lerr error, failures *int, r reply) (done bool, err error) {
	le := &loginError{}
	errors.As(lerr, &le)
	if err := s.writeLine(r.refuse(le)); err != nil {
		return true, err
	}
	if s.ctx.Err() != nil {
		return true, nil // past the login deadline: the program has its answer, and no more time
	}
	if *failures++; *failures >= maxFailures {
		if r.bye != "" {
			_ = s.writeLine(r.bye)
		}
		return true, nil
	}
	return false, nil
}

// staticThenRefresh presents a token already fetched, and refreshes through the account's source.
type staticThenRefresh struct {
	t  *token.Token
	ts token.Source
}

func (s staticThenRefresh) Token(context.Context) (*token.Token, error) { return s.t, nil }
func (s staticThenRefresh) Refresh(ctx context.Context) (*token.Token, error) {
	return s.ts.(token.Refresher).Refresh(ctx)
}

func isRefusal(err error) bool {
	var r *refusal
	return errors.As(err, &r)
}

// oneLine makes text safe to put on a protocol line: no CR/LF, bounded.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

// splice copies bytes both ways until either side closes, the session is idle for IdleTimeout, or
// MaxSession passes. pending is what the program sent after its login command (pipelined), which
// goes upstream first. It returns why the session ended when that was neither side closing nor a
// limit (which log themselves): a reset, a broken TLS record, a write that failed.
func (s *session) splice(uc *upstreamConn) error {
	s.phase.Lock()
	s.spliced = true
	_ = s.conn.SetDeadline(time.Time{}) // a grace deadline from a login that just made it
	s.phase.Unlock()
	s.cancel()
	if n := s.r.Buffered(); n > 0 {
		b, _ := s.r.Peek(n)
		if _, err := uc.conn.Write(b); err != nil {
			return &spliceError{side: "upstream", err: err}
		}
	}
	if n := uc.r.Buffered(); n > 0 {
		b, _ := uc.r.Peek(n)
		if _, err := s.conn.Write(b); err != nil {
			return &spliceError{side: "program", err: err}
		}
	}
	s.r, uc.r = nil, nil // the readers' buffers are no longer needed: reads go to the connections
	limit := time.AfterFunc(s.srv.opts.MaxSession, func() {
		s.log.Info("session closed: maximum duration reached", "max", s.srv.opts.MaxSession)
		s.close()
	})
	defer limit.Stop()
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	m := s.srv.Metrics
	done := make(chan error, 1)
	go func() {
		err := s.copy(uc.conn, s.conn, &last, m.bytesCounter(s.cfg.Protocol, "up"), "program", "upstream")
		s.close()
		done <- err
	}()
	err := s.copy(s.conn, uc.conn, &last, m.bytesCounter(s.cfg.Protocol, "down"), "upstream", "program")
	s.close()
	// The first side to fail is the cause; the other then only sees its connection closed.
	if uerr := <-done; err == nil {
		err = uerr
	}
	return err
}

// spliceError is a failure on one side of a spliced session: side is "program" or "upstream".
type spliceError struct {
	side string
	err  error
}

func (e *spliceError) Error() string { return "the " + e.side + " connection failed: " + e.err.Error() }
func (e *spliceError) Unwrap() error { return e.err }

// quietEnd reports whether err is how a connection ends without anything going wrong: the other end
// closed it, or this proxy did (the other direction ended, a limit, shutdown).
func quietEnd(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) }

// copyBufSize holds a full TLS record (16 KiB), so that one read moves one record.
const copyBufSize = 16 << 10

// A direction with nothing to move waits with an idleBufSize buffer of its own; a read that fills it
// takes a copyBufSize buffer from copyBufs, which goes back once the direction has been quiet for
// shrinkAfter. Mail programs are idle most of the time (polling, IDLE), so an idle session holds
// 2 × 1 KiB instead of 2 × 16 KiB; a burst pays one short record at its start.
const (
	idleBufSize = 1 << 10
	shrinkAfter = 5 * time.Second
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copy moves bytes from src to dst (named srcSide and dstSide in its error). The idle timeout is a
// read deadline on each side; when it fires and the other side was active meanwhile, the wait goes
// on. It returns nil when src closed, the session was closed, or the idle timeout ended it.
func (s *session) copy(dst, src net.Conn, last *atomic.Int64, counter *atomic.Uint64, srcSide, dstSide string) error {
	idle := s.srv.opts.IdleTimeout
	small := make([]byte, idleBufSize)
	buf := small
	var big *[]byte // from copyBufs while data flows
	defer func() {
		if big != nil {
			copyBufs.Put(big)
		}
	}()
	for {
		wait := idle
		if big != nil {
			wait = min(idle, shrinkAfter)
		}
		_ = src.SetReadDeadline(time.Now().Add(wait))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				if quietEnd(werr) {
					return nil
				}
				return &spliceError{side: dstSide, err: werr}
			}
			counter.Add(uint64(n))
			if big == nil && n == len(small) {
				big = copyBufs.Get().(*[]byte)
				buf = *big
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if big != nil { // quiet for a while: wait with the small buffer
					copyBufs.Put(big)
					big, buf = nil, small
				}
				if since := time.Since(time.Unix(0, last.Load())); since < idle {
					continue
				}
				s.log.Info("session closed: idle", "idle", idle)
				return nil
			}
			if quietEnd(err) {
				return nil
			}
			return &spliceError{side: srcSide, err: err}
		}
	}
}
