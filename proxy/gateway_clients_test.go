package proxy_test

// Real programs through the whole proxy with listeners via Graph (issue 15): the proxy's login, then
// the gateway's IMAP, POP3 and SMTP servers carrying the session out over the emulator's Graph.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/gateway/imapgw"
	"github.com/mailoauth/mailoauth/gateway/pop3gw"
	"github.com/mailoauth/mailoauth/gateway/smtpgw"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/mailprograms"
	"github.com/mailoauth/mailoauth/proxy"
)

// gatewayPoll is the labs' poll interval: a folder's listing older than this is refreshed at
// SELECT. Mail a test puts in just before a program connects must be seen by it, so it is short.
const gatewayPoll = time.Millisecond

// realGatewayLab is a lab whose listeners are all via Graph, served by the gateway's servers (as
// the CLI wires them), which log into the lab's log.
func realGatewayLab(t *testing.T, o labOptions) *lab {
	t.Helper()
	o = viaGraph(o)
	var l *lab // the servers start at the first connection, once the lab is made
	logger := func() *slog.Logger {
		return slog.New(slog.NewTextHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "gateway")
	}
	opts := gateway.Options{PollInterval: gatewayPoll}
	o.proxy.Gateway = &proxy.Gateway{
		Mailboxes: gateway.NewMailboxes(nil, opts),
		IMAP: func(on proxy.GatewayListener) error {
			return imapgw.New(imapgw.Options{TLS: on.TLS, PlainLogin: on.LocalTLS == config.LocalTLSNone, Gateway: opts, Log: logger()}).Serve(on.Listener)
		},
		SMTP: func(on proxy.GatewayListener) error {
			return smtpgw.New(smtpgw.Options{TLS: on.TLS, Gateway: opts, Log: logger()}).Serve(on.Listener)
		},
		POP3: func(ctx context.Context, c net.Conn, r *bufio.Reader, mb *gateway.Mailbox) error {
			return pop3gw.Serve(ctx, c, r, mb, pop3gw.Options{Log: logger()})
		},
	}
	l = newLab(t, o)
	return l
}

// gatewayClientCases are clientCases with curl finding its message as a user would, by subject
// (the gateway's UIDs and message numbers are its own, not the emulator store's).
func gatewayClientCases() []clientCase {
	var out []clientCase
	for _, c := range clientCases {
		if c.program == "curl" {
			c.run = curlBySubject
		}
		out = append(out, c)
	}
	return out
}

var (
	searchAnswer = regexp.MustCompile(`\* SEARCH((?: \d+)*)`)
	popCount     = regexp.MustCompile(`(?m)^(\d+) \d+\r?$`)
)

// curlBySubject fetches the message with r.Subject: IMAP by a SEARCH for its subject, then its
// sequence number; POP3 by LIST and then every message, in one curl run; SMTP sends as curl does.
func curlBySubject(_ *lab, r *mailprograms.Run) (string, error) {
	switch r.Protocol {
	case config.ProtocolIMAP:
		out, err := mailprograms.Curl(r, "/INBOX?"+url.PathEscape("SUBJECT "+r.Subject), nil)
		m := searchAnswer.FindStringSubmatch(out)
		if err != nil || m == nil || strings.TrimSpace(m[1]) == "" {
			return out, fmt.Errorf("curl's SEARCH found no message: %v", err)
		}
		nums := strings.Fields(m[1])
		return mailprograms.Curl(r, "/INBOX;MAILINDEX="+nums[len(nums)-1], nil)
	case config.ProtocolPOP:
		out, err := mailprograms.Curl(r, "/", nil)
		lines := popCount.FindAllStringSubmatch(out, -1)
		if err != nil || len(lines) == 0 {
			return out, fmt.Errorf("curl's LIST listed nothing: %v", err)
		}
		var args []string
		for _, l := range lines {
			args = append(args, l[1])
		}
		all := ""
		for _, n := range args {
			got, err := mailprograms.Curl(r, "/"+n, nil)
			if err != nil {
				return all + got, err
			}
			if strings.Contains(got, "Subject: "+r.Subject) {
				return got, nil
			}
			all += got
		}
		return all, fmt.Errorf("no message %q among %d", r.Subject, len(args))
	}
	return mailprograms.CurlSend(r, mailprograms.Message(r.From, r.To, r.Subject))
}

// TestGatewayClients runs fetchmail (POP3, IMAP), mbsync, swaks, curl and Python's imaplib, poplib
// and smtplib through listeners via Graph in every local TLS mode: each finds the message put in
// alice's INBOX, or sends one that lands in bob's; a wrong password is refused, and a program
// trusting another CA never logs in.
func TestGatewayClients(t *testing.T) {
	runClients(t, realGatewayLab(t, labOptions{}), gatewayClientCases())
}

// TestGatewayWhereExchangeIsOff: in a tenant with SMTP AUTH disabled and a mailbox with IMAP and POP
// disabled, programs through the proxy's usual listeners fail with Exchange's own words, while the
// same programs through listeners via Graph work.
func TestGatewayWhereExchangeIsOff(t *testing.T) {
	// As the emulator's scenario graph-gateway.toml has it: the tenant's SMTP AUTH off, alice's IMAP
	// and POP off; the lab's accounts and users as in the default world.
	w := world.Default()
	w.Tenants[0].SMTPAuthDisabled = true
	for _, u := range w.Tenants[0].Users {
		if u.UPN == world.Alice {
			u.Mailbox.IMAPDisabled, u.Mailbox.POPDisabled = true, true
		}
	}
	direct := newLab(t, labOptions{world: w})
	viaGraph := realGatewayLab(t, labOptions{world: w})
	run := func(l *lab, program, protocol string) (*mailprograms.Run, string, error) {
		t.Helper()
		host, port, _ := net.SplitHostPort(l.addr(protocol, config.LocalTLSNone))
		r := &mailprograms.Run{T: t, Protocol: protocol, Mode: config.LocalTLSNone, Host: host, Port: port,
			User: aliceUser, Password: alicePassword, Dir: t.TempDir(),
			Subject: program + "-" + protocol + "-" + strconv.FormatInt(time.Now().UnixNano(), 36), From: world.Alice, To: world.Bob}
		if protocol != config.ProtocolSMTP {
			if _, err := l.emu.Store.Append(world.Alice, mailstore.Inbox, mailprograms.Message(world.Bob, world.Alice, r.Subject), nil, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		var out string
		var err error
		switch program {
		case "swaks":
			out, err = mailprograms.Swaks(r)
		case "fetchmail":
			out, err = mailprograms.Fetchmail(r)
		default:
			out, err = mailprograms.Python(r)
		}
		return r, out, err
	}

	if _, out, err := run(direct, "swaks", config.ProtocolSMTP); err == nil {
		t.Fatalf("swaks to Exchange's SMTP with SMTP AUTH disabled succeeded:\n%s", out)
	}
	direct.waitLog("login failed: upstream refused the token", "SmtpClientAuthentication is disabled for the Tenant")
	if _, out, err := run(direct, "python3", config.ProtocolIMAP); err == nil || !strings.Contains(out, "User is authenticated but not connected.") {
		t.Fatalf("imaplib to Exchange's IMAP with IMAP disabled: %v\n%s", err, out)
	}

	r, out, err := run(viaGraph, "swaks", config.ProtocolSMTP)
	if err != nil {
		t.Fatalf("swaks via Graph: %v\n%s\nproxy log:\n%s", err, out, viaGraph.logs.String())
	}
	waitDelivered(t, viaGraph, world.Bob, r.Subject, out)
	for _, p := range []struct{ program, protocol string }{{"python3", config.ProtocolIMAP}, {"fetchmail", config.ProtocolPOP}} {
		r, out, err := run(viaGraph, p.program, p.protocol)
		if err != nil || !strings.Contains(out, "Subject: "+r.Subject) {
			t.Fatalf("%s %s via Graph: %v\n%s\nproxy log:\n%s", p.program, p.protocol, err, out, viaGraph.logs.String())
		}
	}
}

// TestGatewayMbsyncTwoWay: mbsync keeps a Maildir in sync with alice's mailbox through the gateway
// both ways: new mail comes down; a message marked read and another moved to Archive locally go up
// (Graph then has the first read and the second in Archive, not in the Inbox); a sync after that
// has nothing to do.
func TestGatewayMbsyncTwoWay(t *testing.T) {
	mailprograms.Program(t, "mbsync")
	l := realGatewayLab(t, labOptions{})
	host, port, _ := net.SplitHostPort(l.addr(config.ProtocolIMAP, config.LocalTLSNone))
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	r := &mailprograms.Run{T: t, Protocol: config.ProtocolIMAP, Mode: config.LocalTLSNone, Host: host, Port: port,
		User: aliceUser, Password: alicePassword, Dir: t.TempDir()}
	read, moved := "to-read-"+stamp, "to-move-"+stamp
	for _, s := range []string{read, moved} {
		if _, err := l.emu.Store.Append(world.Alice, mailstore.Inbox, mailprograms.Message(world.Bob, world.Alice, s), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	sync := func(what string) string {
		t.Helper()
		out, err := mailprograms.MbsyncTwoWay(r)
		if err != nil {
			t.Fatalf("mbsync, %s: %v\n%s\nproxy log:\n%s", what, err, out, l.logs.String())
		}
		return out
	}
	local := func(folder, subject string) string {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(r.Dir, "Mail", folder, "*", "*"))
		for _, f := range files {
			// mbsync writes a Maildir's messages with LF line ends.
			if b, _ := os.ReadFile(f); bytes.Contains(b, []byte("Subject: "+subject+"\n")) {
				return f
			}
		}
		return ""
	}

	out := sync("the first")
	readFile, movedFile := local("INBOX", read), local("INBOX", moved)
	if readFile == "" || movedFile == "" {
		t.Fatalf("the first sync brought down no %q or %q:\n%s", read, moved, out)
	}

	// Read one; move the other into Archive (as a new message there: without its INBOX UID).
	if err := os.Rename(readFile, filepath.Join(filepath.Dir(filepath.Dir(readFile)), "cur", strings.SplitN(filepath.Base(readFile), ":", 2)[0]+":2,S")); err != nil {
		t.Fatal(err)
	}
	base := regexp.MustCompile(`,U=\d+`).ReplaceAllString(strings.SplitN(filepath.Base(movedFile), ":", 2)[0], "")
	if err := os.MkdirAll(filepath.Join(r.Dir, "Mail", "Archive", "cur"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(movedFile, filepath.Join(r.Dir, "Mail", "Archive", "cur", base+":2,S")); err != nil {
		t.Fatal(err)
	}
	out = sync("the changes")
	inbox, err := l.emu.Store.List(world.Alice, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	archive, err := l.emu.Store.List(world.Alice, mailstore.Archive)
	if err != nil {
		t.Fatal(err)
	}
	find := func(msgs []mailstore.Message, subject string) *mailstore.Message {
		for i := range msgs {
			if bytes.Contains(msgs[i].Data, []byte("Subject: "+subject+"\r\n")) {
				return &msgs[i]
			}
		}
		return nil
	}
	if m := find(inbox, read); m == nil || !m.HasFlag(mailstore.FlagSeen) {
		t.Errorf("the message read locally is not read in the Inbox (%+v):\n%s", m, out)
	}
	if find(inbox, moved) != nil || find(archive, moved) == nil {
		t.Errorf("the message moved locally is not in Archive alone (inbox %v, archive %v):\n%s", find(inbox, moved) != nil, find(archive, moved) != nil, out)
	}

	// Nothing left to do: the last sync changes neither side.
	state := func() string {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(r.Dir, "Mail", "*", "*", "*"))
		var b strings.Builder
		for _, f := range files {
			fmt.Fprintln(&b, strings.TrimPrefix(f, r.Dir))
		}
		for _, folder := range []string{mailstore.Inbox, mailstore.Archive} {
			msgs, err := l.emu.Store.List(world.Alice, folder)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				fmt.Fprintln(&b, folder, m.ID, m.Flags)
			}
		}
		return b.String()
	}
	before := state()
	out = sync("the last")
	if after := state(); after != before {
		t.Errorf("a sync with nothing to do changed something:\nbefore:\n%s\nafter:\n%s\nmbsync:\n%s", before, after, out)
	}
}

// TestGatewayImapTour: Python's imaplib goes through every IMAP command the gateway serves
// (internal/mailprograms' tour: capabilities, LIST with special-use, CREATE/RENAME/DELETE, STATUS,
// EXAMINE/SELECT, FETCH of each attribute and sections, BODY[] setting \Seen, STORE, SEARCH by flags,
// dates, addresses and UIDs, APPEND/COPY/MOVE with UIDPLUS, EXPUNGE, IDLE seeing an APPEND of
// another connection, ENABLE, NOOP, LOGOUT) in every local TLS mode; Graph ends with the flags
// set and the folders gone.
func TestGatewayImapTour(t *testing.T) {
	mailprograms.Program(t, "python3")
	l := realGatewayLab(t, labOptions{})
	ca := filepath.Join(l.dir, "local-ca.pem")
	chain, err := os.ReadFile(l.certFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, mailprograms.CA(t, chain), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range tlsModes {
		t.Run(mode, func(t *testing.T) {
			host, port, _ := net.SplitHostPort(l.addr(config.ProtocolIMAP, mode))
			stamp := mode + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			r := &mailprograms.Run{T: t, Protocol: config.ProtocolIMAP, Mode: mode, Host: host, Port: port,
				User: aliceUser, Password: alicePassword, Dir: t.TempDir(), Subject: "tour-" + stamp, From: world.Bob, To: world.Alice}
			if mode != config.LocalTLSNone {
				r.CA = ca
			}
			if _, err := l.emu.Store.Append(world.Alice, mailstore.Inbox, mailprograms.Message(r.From, r.To, r.Subject), nil, time.Time{}); err != nil {
				t.Fatal(err)
			}
			out, err := mailprograms.ImapTour(r, stamp)
			if err != nil {
				t.Fatalf("imaplib's tour: %v\n%s\nproxy log:\n%s", err, out, l.logs.String())
			}
			// What the tour did, as Graph has it: the message moved to the tour's folder, unread and
			// flagged (that folder was deleted: to Deleted Items, with its messages).
			msgs, err := l.emu.Store.List(world.Alice, mailstore.DeletedItems+"/Tour-"+stamp)
			if err != nil {
				t.Fatalf("the tour's folder is not in Deleted Items: %v", err)
			}
			if len(msgs) != 1 || !bytes.Contains(msgs[0].Data, []byte("Subject: "+r.Subject+"\r\n")) || msgs[0].HasFlag(mailstore.FlagSeen) || !msgs[0].HasFlag(mailstore.FlagFlagged) {
				t.Errorf("the moved message, as Graph has it: %d messages, %+v", len(msgs), msgs)
			}
		})
	}
}

// TestGatewayThrottled: with Graph answering 429 (Retry-After) to some requests and allowing only two
// at a time, mbsync still gets every message of the INBOX through the gateway, only later.
func TestGatewayThrottled(t *testing.T) {
	mailprograms.Program(t, "mbsync")
	w, err := world.LoadScenario(filepath.Join("..", "internal", "emulator", "world", "testdata", "graph-throttled.toml"))
	if err != nil {
		t.Fatal(err)
	}
	l := realGatewayLab(t, labOptions{world: w})
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	const n = 30
	for i := range n {
		if _, err := l.emu.Store.Append(world.Alice, mailstore.Inbox, mailprograms.Message(world.Bob, world.Alice, fmt.Sprintf("throttled-%s-%d", stamp, i)), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(l.addr(config.ProtocolIMAP, config.LocalTLSNone))
	r := &mailprograms.Run{T: t, Protocol: config.ProtocolIMAP, Mode: config.LocalTLSNone, Host: host, Port: port,
		User: aliceUser, Password: alicePassword, Dir: t.TempDir()}
	out, err := mailprograms.Mbsync(r)
	if err != nil {
		t.Fatalf("mbsync: %v\n%s\nproxy log:\n%s", err, out, l.logs.String())
	}
	for i := range n {
		if !strings.Contains(out, fmt.Sprintf("Subject: throttled-%s-%d\n", stamp, i)) {
			t.Errorf("message %d of %d did not come down", i, n)
		}
	}
	if faulted := l.emu.Graph.Requests() - l.emu.Graph.RequestsTo(world.Alice); faulted < 3 {
		t.Errorf("only %d Graph requests were answered by the scenario's faults: the test did not throttle", faulted)
	}
}
