package imapgw_test

// Real IMAP over loopback TCP with go-imap's client, through the gateway, to the in-process
// emulator's Microsoft Graph.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/gateway"
	"github.com/mailoauth/mailoauth/gateway/imapgw"
	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/token"
)

const password = "imap-password"

// env is an emulator, a gateway IMAP server over its Graph, and a TCP listener that pushes each
// connection to it as the proxy does.
type env struct {
	t       testing.TB
	lab     *emulatortest.Lab
	account token.Account
	address string
	uids    gateway.UIDStore
	ms      *gateway.Mailboxes
	srv     *imapgw.Server
	addr    string
	closed  chan struct{} // one send per Handoff.Closed call
	logs    *bytes.Buffer
	logMu   sync.Mutex
	opts    gateway.Options
	tls     *tls.Config // offered with STARTTLS, and logins need it; nil: plain logins on loopback
}

func newEnv(t testing.TB) *env {
	t.Helper()
	// A short poll interval: IDLE and NOOP see Graph's changes quickly, without sleeping.
	return newEnvPoll(t, 50*time.Millisecond)
}

func newEnvPoll(t testing.TB, poll time.Duration) *env {
	t.Helper()
	lab := emulatortest.Start(t, emulator.Options{})
	acc := lab.Config.Accounts[emulator.ProxyAccount]
	address := acc.Mailbox
	if address == "" {
		address = acc.Email
	}
	a, err := auth.New(lab.Config, auth.Options{}).Account(emulator.ProxyAccount)
	if err != nil {
		t.Fatal(err)
	}
	uids, closer, err := gateway.OpenUIDStore(lab.Config.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	v := &env{t: t, lab: lab, closed: make(chan struct{}, 1000), account: a, address: address, uids: uids, logs: &bytes.Buffer{},
		opts: gateway.Options{PollInterval: poll}}
	v.start()
	t.Cleanup(func() {
		if t.Failed() {
			v.logMu.Lock()
			t.Logf("gateway log:\n%s", v.logs)
			v.logMu.Unlock()
		}
	})
	return v
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// start starts (or, after restart, starts again) the mailboxes and the server: a restart of the
// proxy that keeps the UID store.
func (v *env) start() {
	t := v.t
	v.ms = gateway.NewMailboxes(v.uids, v.opts)
	v.srv = imapgw.New(imapgw.Options{TLS: v.tls, PlainLogin: v.tls == nil, Gateway: v.opts,
		Log: slog.New(slog.NewTextHandler(lockedWriter{&v.logMu, v.logs}, nil))})
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := gateway.NewListener(tcp.Addr())
	go v.srv.Serve(ln)
	lim := graph.NewLimiter(0)
	ms := v.ms
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			var mb *gateway.Mailbox
			h := &gateway.Handoff{
				Login: func(ctx context.Context, user, pass string) (*gateway.Mailbox, error) {
					if !strings.EqualFold(user, v.address) || pass != password {
						return nil, &gateway.LoginError{Msg: "Wrong user name or password."}
					}
					mb = ms.Open(emulator.ProxyAccount, v.address, graph.ClientFor(v.account, v.address, lim))
					return mb, nil
				},
				Closed: func() {
					if mb != nil {
						mb.Close()
					}
					v.closed <- struct{}{}
				},
			}
			if ln.Push(c, h) != nil {
				c.Close()
				return
			}
		}
	}()
	srv := v.srv
	t.Cleanup(func() {
		tcp.Close()
		ln.Close()
		srv.Close()
	})
	v.addr = tcp.Addr().String()
}

// restart stops the server and starts a new one over the same UID store.
func (v *env) restart() {
	v.srv.Close()
	v.start()
}

// dial connects and logs in; the client is closed when the test ends.
func (v *env) dial(o *imapclient.Options) *imapclient.Client {
	v.t.Helper()
	c := v.dialNoLogin(o)
	v.t.Helper()
	if err := c.Login(v.address, password).Wait(); err != nil {
		v.t.Fatalf("LOGIN: %v", err)
	}
	return c
}

func (v *env) dialNoLogin(o *imapclient.Options) *imapclient.Client {
	v.t.Helper()
	c, err := imapclient.DialInsecure(v.addr, o)
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { c.Close() })
	return c
}

// deliver puts a message into a folder of the mailbox, as mail arriving does.
func (v *env) deliver(folder, subject, body string) {
	v.t.Helper()
	if _, err := v.lab.E.Store.Append(v.address, folder, message(subject, body), nil, time.Time{}); err != nil {
		v.t.Fatal(err)
	}
}

func message(subject, body string) []byte {
	return []byte("From: Bob <bob@contoso.test>\r\nTo: alice@contoso.test\r\nSubject: " + subject +
		"\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") +
		"@contoso.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n")
}

func selectBox(t testing.TB, c *imapclient.Client, name string, readOnly bool) *imap.SelectData {
	t.Helper()
	d, err := c.Select(name, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		t.Fatalf("SELECT %s: %v", name, err)
	}
	return d
}

func fetchAll(t testing.TB, c *imapclient.Client, set imap.NumSet, o *imap.FetchOptions) []*imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(set, o).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	return msgs
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, g := range flags {
		if g == f {
			return true
		}
	}
	return false
}

func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

func TestLoginCapabilitiesAndClosed(t *testing.T) {
	v := newEnv(t)
	c := v.dialNoLogin(nil)
	err := c.Login(v.address, "wrong").Wait()
	if imapCode(err) != imap.ResponseCodeAuthenticationFailed || !strings.Contains(err.Error(), "Wrong user name or password.") {
		t.Fatalf("LOGIN with a wrong password: %v, want NO [AUTHENTICATIONFAILED] with the Handoff's text", err)
	}
	if err := c.Login(v.address, password).Wait(); err != nil {
		t.Fatalf("LOGIN after a refusal: %v", err)
	}
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapLiteralPlus, imap.CapUIDPlus, imap.CapMove,
		imap.CapIdle, imap.CapSpecialUse, imap.CapNamespace, imap.CapEnable} {
		if !caps.Has(want) {
			t.Errorf("CAPABILITY lacks %s", want)
		}
	}
	if caps.Has(imap.CapCondStore) {
		t.Error("CAPABILITY has CONDSTORE, which the gateway does not implement")
	}
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' {
		t.Errorf("NAMESPACE: %+v, %v", ns, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	// AUTHENTICATE PLAIN goes through the same Handoff.Login.
	c2 := v.dialNoLogin(nil)
	if err := c2.Authenticate(plainClient(v.address, password)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	c2.Logout().Wait()
	c.Close()
	c2.Close()
	timeout := time.After(time.Minute)
	for i := 0; i < 2; i++ {
		select {
		case <-v.closed:
		case <-timeout:
			t.Fatalf("Handoff.Closed was called %d times for 2 ended sessions", i)
		}
	}
	select {
	case <-v.closed:
		t.Error("Handoff.Closed was called more than once for a session")
	default:
	}
	if strings.Contains(v.logs.String(), password) {
		t.Error("the log holds the password")
	}
}

func plainClient(user, pass string) sasl.Client { return sasl.NewPlainClient("", user, pass) }

func listNames(t testing.TB, c *imapclient.Client, pattern string) map[string]*imap.ListData {
	t.Helper()
	l, err := c.List("", pattern, nil).Collect()
	if err != nil {
		t.Fatalf("LIST %q: %v", pattern, err)
	}
	out := map[string]*imap.ListData{}
	for _, d := range l {
		out[d.Mailbox] = d
	}
	return out
}

func hasAttr(d *imap.ListData, a imap.MailboxAttr) bool {
	for _, b := range d.Attrs {
		if strings.EqualFold(string(b), string(a)) {
			return true
		}
	}
	return false
}

func TestListAndFolders(t *testing.T) {
	v := newEnv(t)
	c := v.dial(nil)
	l := listNames(t, c, "*")
	for name, attr := range map[string]imap.MailboxAttr{"Sent Items": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts,
		"Deleted Items": imap.MailboxAttrTrash, "Junk Email": imap.MailboxAttrJunk, "Archive": imap.MailboxAttrArchive} {
		if l[name] == nil || !hasAttr(l[name], attr) {
			t.Errorf("LIST: %s = %+v, want the attribute %s", name, l[name], attr)
		}
	}
	if l["INBOX"] == nil || !hasAttr(l["INBOX"], imap.MailboxAttrHasNoChildren) {
		t.Errorf("LIST: INBOX = %+v, want it with \\HasNoChildren", l["INBOX"])
	}

	for _, name := range []string{"Projects", "Projects/2026"} {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", name, err)
		}
	}
	l = listNames(t, c, "Projects*")
	if l["Projects"] == nil || !hasAttr(l["Projects"], imap.MailboxAttrHasChildren) || l["Projects/2026"] == nil {
		t.Fatalf("LIST after CREATE: %v", l)
	}
	// LSUB: every folder is subscribed.
	lsub, err := c.List("", "Projects/%", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil || len(lsub) != 1 || lsub[0].Mailbox != "Projects/2026" {
		t.Errorf("LSUB Projects/%%: %+v, %v", lsub, err)
	}
	if err := c.Rename("Projects/2026", "Projects/2027", nil).Wait(); err != nil {
		t.Fatalf("RENAME: %v", err)
	}
	v.deliver(mailstore.Inbox, "status one", "x")
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true}).Wait()
	if err != nil || *st.NumMessages != 1 || *st.NumUnseen != 1 || st.UIDValidity == 0 || st.UIDNext < 2 {
		t.Errorf("STATUS INBOX: %+v, %v", st, err)
	}
	if err := c.Delete("Projects/2027").Wait(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	l = listNames(t, c, "Projects*")
	if l["Projects/2027"] != nil || l["Projects/2026"] != nil || l["Projects"] == nil || !hasAttr(l["Projects"], imap.MailboxAttrHasNoChildren) {
		t.Errorf("LIST after RENAME and DELETE: %v", l)
	}
	if _, err := c.Select("No Such Folder", nil).Wait(); err == nil {
		t.Error("SELECT of a folder that does not exist succeeded")
	}
}

func TestSelectFetchStore(t *testing.T) {
	v := newEnv(t)
	for i := 1; i <= 3; i++ {
		v.deliver(mailstore.Inbox, fmt.Sprintf("hello %d", i), fmt.Sprintf("body number %d", i))
	}
	c := v.dial(nil)
	d := selectBox(t, c, "INBOX", false)
	if d.NumMessages != 3 || d.UIDValidity == 0 || d.UIDNext == 0 || !hasFlag(d.PermanentFlags, imap.FlagSeen) || hasFlag(d.PermanentFlags, imap.FlagDraft) {
		t.Fatalf("SELECT INBOX: %+v", d)
	}
	msgs := fetchAll(t, c, imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}}})
	if len(msgs) != 3 {
		t.Fatalf("FETCH 1:3 gave %d messages", len(msgs))
	}
	var uids []imap.UID
	for i, m := range msgs {
		uids = append(uids, m.UID)
		want := fmt.Sprintf("hello %d", i+1)
		if m.Envelope == nil || m.Envelope.Subject != want || len(m.Envelope.From) != 1 || m.Envelope.From[0].Addr() != "bob@contoso.test" {
			t.Errorf("message %d: envelope %+v, want subject %q from bob", i+1, m.Envelope, want)
		}
		if hasFlag(m.Flags, imap.FlagSeen) || m.RFC822Size == 0 || m.InternalDate.IsZero() {
			t.Errorf("message %d: flags %v size %d date %v", i+1, m.Flags, m.RFC822Size, m.InternalDate)
		}
		hdr := string(m.BodySection[0].Bytes)
		if !strings.HasPrefix(hdr, "Subject: "+want) || strings.Contains(hdr, "From:") {
			t.Errorf("message %d: BODY[HEADER.FIELDS (SUBJECT)] = %q", i+1, hdr)
		}
	}
	if !(uids[0] < uids[1] && uids[1] < uids[2]) || uint32(uids[2]) >= uint32(d.UIDNext) {
		t.Errorf("UIDs %v not ascending below UIDNEXT %d", uids, d.UIDNext)
	}

	// BODY[] without PEEK: the whole message, and \Seen set in Graph.
	body := fetchAll(t, c, imap.UIDSetNum(uids[1]), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{}},
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true}})
	raw := string(body[0].BodySection[0].Bytes)
	if !strings.Contains(raw, "Subject: hello 2") || !strings.Contains(raw, "body number 2") || !hasFlag(body[0].Flags, imap.FlagSeen) {
		t.Errorf("UID FETCH BODY[]: flags %v, message %q", body[0].Flags, raw)
	}
	if bs, ok := body[0].BodyStructure.(*imap.BodyStructureSinglePart); !ok || !strings.EqualFold(bs.Type, "text") || !strings.EqualFold(bs.Subtype, "plain") {
		t.Errorf("BODYSTRUCTURE: %#v", body[0].BodyStructure)
	}
	text := fetchAll(t, c, imap.UIDSetNum(uids[1]), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText, Peek: true, Partial: &imap.SectionPartial{Offset: 5, Size: 6}}}})
	if got := string(text[0].BodySection[0].Bytes); got != "number" {
		t.Errorf("BODY.PEEK[TEXT]<5.6> = %q, want \"number\"", got)
	}
	part := fetchAll(t, c, imap.UIDSetNum(uids[1]), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Part: []int{1}, Peek: true}, {Part: []int{2}, Peek: true}}})
	if got := string(part[0].FindBodySection(&imap.FetchItemBodySection{Part: []int{1}})); got != "body number 2\r\n" {
		t.Errorf("BODY.PEEK[1] of a single-part message = %q, want its body", got)
	}
	if got := part[0].FindBodySection(&imap.FetchItemBodySection{Part: []int{2}}); len(got) != 0 {
		t.Errorf("BODY.PEEK[2] of a single-part message = %q, want empty", got)
	}

	// STORE: \Flagged and \Seen go to Graph; \Deleted stays in the session.
	st, err := c.Store(imap.UIDSetNum(uids[0]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, imap.FlagSeen}}, nil).Collect()
	if err != nil || len(st) != 1 || !hasFlag(st[0].Flags, imap.FlagFlagged) || !hasFlag(st[0].Flags, imap.FlagSeen) {
		t.Fatalf("STORE +FLAGS: %+v, %v", st, err)
	}
	if _, err := c.Store(imap.UIDSetNum(uids[2]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	// Another session (and Graph) sees them; UIDs are the same.
	c2 := v.dial(nil)
	selectBox(t, c2, "INBOX", true)
	again := fetchAll(t, c2, imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true, Flags: true})
	for i, m := range again {
		if m.UID != uids[i] {
			t.Errorf("second session: message %d has UID %d, first session had %d", i+1, m.UID, uids[i])
		}
	}
	if f := again[0].Flags; !hasFlag(f, imap.FlagFlagged) || !hasFlag(f, imap.FlagSeen) {
		t.Errorf("second session: message 1 flags %v, want \\Flagged \\Seen", f)
	}
	if f := again[1].Flags; !hasFlag(f, imap.FlagSeen) {
		t.Errorf("second session: message 2 flags %v, want \\Seen (set by BODY[])", f)
	}
	if f := again[2].Flags; hasFlag(f, imap.FlagDeleted) {
		t.Errorf("second session: message 3 flags %v: \\Deleted is the first session's only", f)
	}
	stored, err := v.lab.E.Store.List(v.address, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	var flagged int
	for _, m := range stored {
		if hasString(m.Flags, `\Flagged`) {
			flagged++
		}
	}
	if flagged != 1 {
		t.Errorf("Graph's mailbox has %d flagged messages, want 1", flagged)
	}
	// STORE -FLAGS \Flagged round trip.
	if _, err := c.Store(imap.UIDSetNum(uids[0]), &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	c3 := v.dial(nil)
	selectBox(t, c3, "INBOX", true)
	if m := fetchAll(t, c3, imap.UIDSetNum(uids[0]), &imap.FetchOptions{Flags: true}); hasFlag(m[0].Flags, imap.FlagFlagged) {
		t.Errorf("after STORE -FLAGS \\Flagged a new session sees %v", m[0].Flags)
	}
	// EXAMINE is read-only.
	if _, err := c3.Store(imap.UIDSetNum(uids[0]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err == nil {
		t.Error("STORE in an EXAMINEd folder succeeded")
	}
}

func hasString(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func TestUIDsStableAcrossRestart(t *testing.T) {
	v := newEnv(t)
	v.deliver(mailstore.Inbox, "one", "1")
	v.deliver(mailstore.Inbox, "two", "2")
	c := v.dial(nil)
	d := selectBox(t, c, "INBOX", true)
	before := fetchAll(t, c, imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true})
	c.Logout().Wait()
	v.restart()
	c2 := v.dial(nil)
	d2 := selectBox(t, c2, "INBOX", true)
	after := fetchAll(t, c2, imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true})
	if d.UIDValidity != d2.UIDValidity || before[0].UID != after[0].UID || before[1].UID != after[1].UID {
		t.Errorf("after a restart: UIDVALIDITY %d→%d, UIDs %d,%d→%d,%d", d.UIDValidity, d2.UIDValidity,
			before[0].UID, before[1].UID, after[0].UID, after[1].UID)
	}
}

func TestExpungeMoveCopyAppend(t *testing.T) {
	v := newEnv(t)
	for i := 1; i <= 4; i++ {
		v.deliver(mailstore.Inbox, fmt.Sprintf("m%d", i), "x")
	}
	var expunged []uint32
	var mu sync.Mutex
	c := v.dial(&imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { mu.Lock(); expunged = append(expunged, seq); mu.Unlock() },
	}})
	selectBox(t, c, "INBOX", false)
	all := fetchAll(t, c, imap.SeqSetNum(1, 2, 3, 4), &imap.FetchOptions{UID: true})
	uid := func(i int) imap.UID { return all[i].UID }

	// \Deleted + EXPUNGE: the message goes to Deleted Items.
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if seqs, err := c.Expunge().Collect(); err != nil || fmt.Sprint(seqs) != "[1]" {
		t.Fatalf("EXPUNGE: %v, %v; want [1]", seqs, err)
	}
	if trash, _ := v.lab.E.Store.List(v.address, mailstore.DeletedItems); len(trash) != 1 || !bytes.Contains(trash[0].Data, []byte("Subject: m1")) {
		t.Errorf("Deleted Items after EXPUNGE holds %d messages, want m1", len(trash))
	}

	// MOVE with COPYUID: the UIDs given are those Archive shows.
	mv, err := c.Move(imap.UIDSetNum(uid(1)), "Archive").Wait()
	if err != nil {
		t.Fatalf("UID MOVE: %v", err)
	}
	destUIDs, _ := mv.DestUIDs.(imap.UIDSet).Nums()
	srcUIDs, _ := mv.SourceUIDs.(imap.UIDSet).Nums()
	if len(destUIDs) != 1 || len(srcUIDs) != 1 || srcUIDs[0] != uid(1) || mv.UIDValidity == 0 {
		t.Fatalf("MOVE's COPYUID: %+v", mv)
	}
	mu.Lock()
	if fmt.Sprint(expunged) != "[1]" { // m2 was message 1 once m1 was gone
		t.Errorf("MOVE's EXPUNGE responses %v, want [1]", expunged)
	}
	mu.Unlock()

	// COPY keeps the source.
	cp, err := c.Copy(imap.UIDSetNum(uid(2)), "Archive").Wait()
	if err != nil {
		t.Fatalf("UID COPY: %v", err)
	}
	cpUIDs, _ := cp.DestUIDs.Nums()

	// APPEND with APPENDUID.
	msg := message("appended", "appended body")
	ap := c.Append("Archive", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
	ap.Write(msg)
	ap.Close()
	ad, err := ap.Wait()
	if err != nil || ad.UID == 0 {
		t.Fatalf("APPEND: %+v, %v", ad, err)
	}
	if _, err := c.Copy(imap.UIDSetNum(uid(3)), "Nowhere").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to a folder that does not exist: %v, want NO [TRYCREATE]", err)
	}

	sel := selectBox(t, c, "Archive", true)
	if sel.UIDValidity != mv.UIDValidity || sel.UIDValidity != ad.UIDValidity || sel.NumMessages != 3 {
		t.Errorf("Archive: %+v; COPYUID validity %d, APPENDUID validity %d", sel, mv.UIDValidity, ad.UIDValidity)
	}
	got := map[imap.UID]string{}
	for _, m := range fetchAll(t, c, imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true, Flags: true, Envelope: true}) {
		got[m.UID] = m.Envelope.Subject
		if m.Envelope.Subject == "appended" && (!hasFlag(m.Flags, imap.FlagSeen) || hasFlag(m.Flags, imap.FlagDraft)) {
			t.Errorf("the APPENDed message's flags are %v, want \\Seen and no \\Draft outside Drafts", m.Flags)
		}
	}
	if got[destUIDs[0]] != "m2" || got[cpUIDs[0]] != "m3" || got[ad.UID] != "appended" {
		t.Errorf("Archive by UID: %v; MOVE gave %d, COPY %d, APPEND %d", got, destUIDs[0], cpUIDs[0], ad.UID)
	}
	inbox, _ := v.lab.E.Store.List(v.address, mailstore.Inbox)
	if len(inbox) != 2 {
		t.Errorf("INBOX holds %d messages after EXPUNGE of one and MOVE of one of 4", len(inbox))
	}
}

func TestSearch(t *testing.T) {
	v := newEnv(t)
	v.deliver(mailstore.Inbox, "invoice March", "a")
	v.deliver(mailstore.Inbox, "lunch", "b")
	v.deliver(mailstore.Inbox, "invoice April", "c")
	c := v.dial(nil)
	selectBox(t, c, "INBOX", false)
	all := fetchAll(t, c, imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true})
	if _, err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	today := time.Now()
	for _, tc := range []struct {
		name string
		c    imap.SearchCriteria
		want []uint32
	}{
		{"SUBJECT invoice", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "INVOICE"}}}, []uint32{1, 3}},
		{"UNSEEN", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []uint32{1, 3}},
		{"SEEN FLAGGED", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen, imap.FlagFlagged}}, []uint32{2}},
		{"FROM bob", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "bob@contoso"}}}, []uint32{1, 2, 3}},
		{"TO carol", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "To", Value: "carol"}}}, nil},
		{"NOT SUBJECT lunch", imap.SearchCriteria{Not: []imap.SearchCriteria{{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "lunch"}}}}}, []uint32{1, 3}},
		{"OR FLAGGED SUBJECT April", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{imap.FlagFlagged}}, {Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "April"}}}}}}, []uint32{2, 3}},
		{"SINCE yesterday", imap.SearchCriteria{Since: today.AddDate(0, 0, -1)}, []uint32{1, 2, 3}},
		{"BEFORE yesterday", imap.SearchCriteria{Before: today.AddDate(0, 0, -1)}, nil},
		{"SENTBEFORE 2026-12-05", imap.SearchCriteria{SentBefore: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}, []uint32{1, 2, 3}},
		{"UID 2:*", imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: all[1].UID, Stop: 0}}}}, []uint32{2, 3}},
	} {
		d, err := c.Search(&tc.c, nil).Wait()
		if err != nil {
			t.Errorf("SEARCH %s: %v", tc.name, err)
			continue
		}
		if got := d.AllSeqNums(); fmt.Sprint(got) != fmt.Sprint(tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("SEARCH %s = %v, want %v", tc.name, got, tc.want)
		}
	}
	uids, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "lunch"}}}, nil).Wait()
	if err != nil || fmt.Sprint(uids.AllUIDs()) != fmt.Sprint([]imap.UID{all[1].UID}) {
		t.Errorf("UID SEARCH SUBJECT lunch = %v, %v; want [%d]", uids, err, all[1].UID)
	}
	if _, err := c.Search(&imap.SearchCriteria{Body: []string{"x"}}, nil).Wait(); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("SEARCH BODY: %v, want NO saying it is not supported", err)
	}
}

func TestIdleSeesDelivery(t *testing.T) {
	v := newEnv(t)
	v.deliver(mailstore.Inbox, "first", "1")
	exists := make(chan uint32, 10)
	c := v.dial(&imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	selectBox(t, c, "INBOX", false)
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	v.deliver(mailstore.Inbox, "second", "2")
	select {
	case n := <-exists:
		if n != 2 {
			t.Errorf("IDLE: * %d EXISTS, want 2", n)
		}
	case <-time.After(time.Minute):
		t.Fatal("IDLE did not announce the delivered message within a minute")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE ended with %v", err)
	}
	m := fetchAll(t, c, imap.SeqSetNum(2), &imap.FetchOptions{Envelope: true})
	if len(m) != 1 || m[0].Envelope.Subject != "second" {
		t.Errorf("FETCH 2 after IDLE: %+v", m)
	}
}

func TestCreateExistingAndAppendLimit(t *testing.T) {
	v := newEnv(t)
	v.opts.MaxMessage = 1000
	v.restart()
	c := v.dial(nil)
	if err := c.Create("Archive", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("CREATE Archive: %v, want NO [ALREADYEXISTS]", err)
	}
	big := message("too big", strings.Repeat("x", 2000))
	ap := c.Append("INBOX", int64(len(big)), nil)
	ap.Write(big)
	ap.Close()
	if _, err := ap.Wait(); imapCode(err) != imap.ResponseCodeTooBig {
		t.Errorf("APPEND over MaxMessage: %v, want NO [TOOBIG]", err)
	}
	if inbox, _ := v.lab.E.Store.List(v.address, mailstore.Inbox); len(inbox) != 0 {
		t.Errorf("INBOX holds %d messages after a refused APPEND", len(inbox))
	}
}

// recorder keeps the unilateral responses a client was sent.
type recorder struct {
	mu       sync.Mutex
	expunged []uint32
	exists   []uint32
	flags    map[uint32][]imap.Flag
}

func (r *recorder) options() *imapclient.Options {
	r.flags = map[uint32][]imap.Flag{}
	return &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { r.mu.Lock(); r.expunged = append(r.expunged, seq); r.mu.Unlock() },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				r.mu.Lock()
				r.exists = append(r.exists, *d.NumMessages)
				r.mu.Unlock()
			}
		},
		Fetch: func(m *imapclient.FetchMessageData) {
			b, _ := m.Collect()
			r.mu.Lock()
			r.flags[m.SeqNum] = b.Flags
			r.mu.Unlock()
		},
	}}
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("EXPUNGE %v, EXISTS %v, FETCH FLAGS %v", r.expunged, r.exists, r.flags)
}

// Another session's changes reach this one at NOOP; an EXPUNGE never comes during FETCH, STORE or
// SEARCH, whose sequence numbers must keep meaning what the session was told.
func TestOthersChangesAnnounced(t *testing.T) {
	v := newEnv(t)
	for i := 1; i <= 3; i++ {
		v.deliver(mailstore.Inbox, fmt.Sprintf("m%d", i), "x")
	}
	var rec recorder
	a := v.dial(rec.options())
	selectBox(t, a, "INBOX", false)
	b := v.dial(nil)
	selectBox(t, b, "INBOX", false)
	if _, err := b.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Move(imap.SeqSetNum(2), "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	// FETCH in a: message 3 is still number 3 (no EXPUNGE yet), message 2 still answers.
	m := fetchAll(t, a, imap.SeqSetNum(3), &imap.FetchOptions{Envelope: true})
	if len(m) != 1 || m[0].Envelope.Subject != "m3" {
		t.Fatalf("FETCH 3 after another session moved message 2: %+v", m)
	}
	rec.mu.Lock()
	early := len(rec.expunged)
	rec.mu.Unlock()
	if early != 0 {
		t.Errorf("EXPUNGE sent during FETCH: %s", &rec)
	}
	v.deliver(mailstore.Inbox, "m4", "x")
	// NOOP within the poll interval's reach: a bounded number of NOOPs, each a Graph refresh at most.
	deadline := time.Now().Add(time.Minute)
	for {
		if err := a.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		done := len(rec.expunged) > 0 && len(rec.exists) > 0
		rec.mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if fmt.Sprint(rec.expunged) != "[2]" || len(rec.exists) == 0 || rec.exists[len(rec.exists)-1] != 3 || !hasFlag(rec.flags[1], imap.FlagFlagged) {
		t.Errorf("after NOOP: EXPUNGE %v (want [2]), EXISTS %v (want 3 last), FETCH FLAGS %v (want 1 \\Flagged)", rec.expunged, rec.exists, rec.flags)
	}
}

// Graph throttling slows commands down; none fails and nothing is lost.
func TestThrottledLosesNothing(t *testing.T) {
	v := newEnv(t)
	v.deliver(mailstore.Inbox, "one", "body one")
	v.deliver(mailstore.Inbox, "two", "body two")
	c := v.dial(nil)
	selectBox(t, c, "INBOX", false)
	if err := v.lab.E.Live.Update(func(w *world.World) error {
		// The next three Graph requests — the gateway's, nothing else here calls Graph — are 429s.
		w.Faults = append(w.Faults, world.Fault{Endpoint: "graph", Status: 429, Times: 3})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatalf("STORE while Graph throttles: %v", err)
	}
	m := fetchAll(t, c, imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if len(m) != 1 || !strings.Contains(string(m[0].BodySection[0].Bytes), "body two") {
		t.Fatalf("FETCH BODY.PEEK[] while Graph throttles: %+v", m)
	}
	if _, err := c.Move(imap.SeqSetNum(2), "Archive").Wait(); err != nil {
		t.Fatalf("MOVE while Graph throttles: %v", err)
	}
	inbox, _ := v.lab.E.Store.List(v.address, mailstore.Inbox)
	archive, _ := v.lab.E.Store.List(v.address, mailstore.Archive)
	if len(inbox) != 1 || !hasString(inbox[0].Flags, `\Flagged`) || len(archive) != 1 {
		t.Errorf("after throttling: INBOX %d messages (flags %v), Archive %d", len(inbox), inbox[0].Flags, len(archive))
	}
}

// With a TLS configuration, logins need STARTTLS first; the session found its Handoff before the
// connection turned into TLS.
func TestSTARTTLS(t *testing.T) {
	v := newEnv(t)
	ts := httptest.NewTLSServer(nil) // its certificate (127.0.0.1) and a client that trusts it
	clientConf := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	v.tls = ts.TLS.Clone()
	ts.Close()
	v.restart()

	plain := v.dialNoLogin(nil)
	caps, err := plain.Capability().Wait()
	if err != nil || !caps.Has(imap.CapStartTLS) || !caps.Has(imap.CapLoginDisabled) {
		t.Errorf("CAPABILITY before STARTTLS: %v, %v; want STARTTLS and LOGINDISABLED", caps, err)
	}
	if err := plain.Login(v.address, password).Wait(); imapCode(err) != imap.ResponseCodePrivacyRequired {
		t.Errorf("LOGIN without TLS: %v, want NO [PRIVACYREQUIRED]", err)
	}
	c, err := imapclient.DialStartTLS(v.addr, &imapclient.Options{TLSConfig: clientConf})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Login(v.address, password).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	selectBox(t, c, "INBOX", true)
}

// Serve on a closed Server returns at once and closes its Listener: the proxy's Push fails
// rather than blocks.
func TestServeAfterClose(t *testing.T) {
	srv := imapgw.New(imapgw.Options{PlainLogin: true})
	srv.Close()
	ln := gateway.NewListener(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	pushed := make(chan error, 1)
	go func() { pushed <- ln.Push(a, &gateway.Handoff{}) }()
	select {
	case err := <-pushed:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Push to a closed Server's Listener: %v, want net.ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Push to a closed Server's Listener blocked")
	}
	<-done
}

// ENVELOPE and header fields come from the listing's headers: listing a folder's headers costs no
// Graph request per message.
func TestHeadersWithoutMIME(t *testing.T) {
	v := newEnvPoll(t, time.Hour) // no refresh of the listing during the FETCH
	for i := 1; i <= 20; i++ {
		v.deliver(mailstore.Inbox, fmt.Sprintf("subject %d", i), "x")
	}
	c := v.dial(nil)
	selectBox(t, c, "INBOX", true)
	before := v.lab.E.Graph.Requests()
	msgs := fetchAll(t, c, imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "From"}, Peek: true}}})
	if n := v.lab.E.Graph.Requests() - before; n != 0 {
		t.Errorf("FETCH 1:* (ENVELOPE BODY.PEEK[HEADER.FIELDS ...]) of 20 messages made %d Graph requests, want 0", n)
	}
	if len(msgs) != 20 || msgs[19].Envelope.Subject != "subject 20" || !strings.Contains(string(msgs[19].BodySection[0].Bytes), "From: Bob") {
		t.Errorf("FETCH 1:*: %d messages, the last %+v", len(msgs), msgs[len(msgs)-1])
	}
}

// The temporary file a FETCH spools a message to is gone once the FETCH answered.
func TestSpoolRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	v := newEnv(t)
	v.deliver(mailstore.Inbox, "spooled", "body")
	c := v.dial(nil)
	selectBox(t, c, "INBOX", true)
	m := fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true}})
	if len(m) != 1 || !strings.Contains(string(m[0].BodySection[0].Bytes), "body") {
		t.Fatalf("FETCH: %+v", m)
	}
	var left []string
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "mailoauth-imap-") {
			left = append(left, e.Name())
		}
	}
	if len(left) != 0 {
		t.Errorf("spool files left in the temporary directory: %v", left)
	}
}

// APPENDLIMIT is what Graph can create from MIME; a larger APPEND is refused before its upload.
func TestAppendLimitIsGraphs(t *testing.T) {
	v := newEnv(t)
	c := v.dial(nil)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if limit, ok := caps.AppendLimit(); !ok || limit == nil || *limit != graph.MaxCreateMIME {
		t.Errorf("APPENDLIMIT %v, want graph.MaxCreateMIME (%d)", limit, graph.MaxCreateMIME)
	}
	ap := c.Append("INBOX", graph.MaxCreateMIME+1, nil)
	ap.Close() // a synchronising literal: the server answers before any byte is sent
	if _, err := ap.Wait(); imapCode(err) != imap.ResponseCodeTooBig {
		t.Errorf("APPEND over APPENDLIMIT: %v, want NO [TOOBIG]", err)
	}
}
