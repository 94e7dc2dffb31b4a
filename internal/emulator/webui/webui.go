// Package webui is the emulator's read-only web page: the mailboxes of every tenant (users' and
// shared) with their messages (headers, text and HTML bodies, attachments to download) and the
// event log, newest first — what a developer looks at to see what their program did.
//
// It must never change anything (it answers GET and HEAD only) and must never run what a message
// carries: pages are html/template output under a Content-Security-Policy that allows no script, and
// a message's HTML body is served on its own under a sandboxing policy, into a sandboxed iframe.
// It does no authorization: the control API mounts it behind its own.
package webui

import (
	"embed"
	"html/template"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// Config is what the page shows.
type Config struct {
	Store  *mailstore.Store // the mailboxes
	World  *world.Live      // the tenants, users and shared mailboxes
	Events *events.Log      // the event log (nil: none to show)
}

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"flags": func(f []string) string { return strings.Join(f, " ") },
}).ParseFS(assets, "assets/*.html"))

// pageCSP is every page's policy: no script, styles from the page itself, frames and images from
// the emulator only, forms submitted to it only.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; form-action 'self'; base-uri 'none'"

// htmlCSP is a message's HTML body's policy: a sandbox with no script, no requests anywhere (a mail's
// remote images would tell its sender it was read), inline styles and data: images only.
const htmlCSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"

// maxEvents bounds the event log page.
const maxEvents = 500

// Handler serves the page. Its links are relative, so mount it at a path ending in a slash with
// http.StripPrefix: mux.Handle("/_emulator/ui/", http.StripPrefix("/_emulator/ui", webui.Handler(c))).
func Handler(c Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.index)
	mux.HandleFunc("GET /mailbox", c.mailbox)
	mux.HandleFunc("GET /message", c.message)
	mux.HandleFunc("GET /message/html", c.messageHTML)
	mux.HandleFunc("GET /message/raw", c.messageRaw)
	mux.HandleFunc("GET /message/part", c.messagePart)
	mux.HandleFunc("GET /events", c.events)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "the emulator's web page is read-only: change the emulator with the control API", http.StatusMethodNotAllowed)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		// Headers are gone by now; the page ends where the error happened.
		_, _ = w.Write([]byte("\n<p>the page could not be finished: " + template.HTMLEscapeString(err.Error()) + "</p>"))
	}
}

// box is a mailbox in the index.
type box struct {
	Address, Name string
	Shared        bool
	Messages      int
}

type tenantView struct {
	Name, DisplayName string
	Boxes             []box
}

func (c Config) index(w http.ResponseWriter, r *http.Request) {
	var data struct {
		Tenants []tenantView
		Others  []box // mailboxes the World no longer names (a user removed at runtime)
	}
	known := map[string]bool{}
	for _, t := range c.World.Load().Tenants {
		tv := tenantView{Name: t.Name, DisplayName: t.DisplayName}
		for _, u := range t.Users {
			tv.Boxes = append(tv.Boxes, box{Address: u.UPN, Name: u.DisplayName, Messages: c.count(u.UPN)})
			known[strings.ToLower(u.UPN)] = true
		}
		for _, s := range t.SharedMailboxes {
			tv.Boxes = append(tv.Boxes, box{Address: s.Address, Name: s.DisplayName, Shared: true, Messages: c.count(s.Address)})
			known[strings.ToLower(s.Address)] = true
		}
		data.Tenants = append(data.Tenants, tv)
	}
	for _, a := range c.Store.Addresses() {
		if !known[strings.ToLower(a)] {
			data.Others = append(data.Others, box{Address: a, Messages: c.count(a)})
		}
	}
	render(w, "index.html", data)
}

// count is how many messages a mailbox holds, over all its folders.
func (c Config) count(address string) int {
	m := c.Store.Mailbox(address)
	if m == nil {
		return 0
	}
	n := 0
	for _, name := range m.Folders() {
		if f := m.Folder(name); f != nil {
			n += len(f.Messages())
		}
	}
	return n
}

// row is a message in a list.
type row struct {
	summary
	ID       string
	Received time.Time
	Flags    []string
	Size     int
}

type folderView struct {
	Name     string
	Count    int
	Selected bool
}

func (c Config) mailbox(w http.ResponseWriter, r *http.Request) {
	addr := r.URL.Query().Get("address")
	m := c.Store.Mailbox(addr)
	if m == nil {
		http.Error(w, "no mail has reached "+addr+" yet (or it is no mailbox of this emulator)", http.StatusNotFound)
		return
	}
	folder := r.URL.Query().Get("folder")
	if folder == "" {
		folder = mailstore.Inbox
	}
	f := m.Folder(folder)
	if f == nil {
		http.Error(w, "mailbox "+addr+" has no folder "+folder, http.StatusNotFound)
		return
	}
	data := struct {
		Address, Folder string
		Folders         []folderView
		Rows            []row
	}{Address: m.Address(), Folder: f.Name()}
	for _, name := range m.Folders() {
		if g := m.Folder(name); g != nil {
			data.Folders = append(data.Folders, folderView{Name: g.Name(), Count: len(g.Messages()), Selected: g == f})
		}
	}
	msgs := f.Messages()
	for i := len(msgs) - 1; i >= 0; i-- { // newest first
		msg := msgs[i]
		data.Rows = append(data.Rows, row{summary: summarize(msg.Data), ID: msg.ID, Received: msg.Received,
			Flags: msg.Flags, Size: msg.Size()})
	}
	render(w, "mailbox.html", data)
}

// find looks up the message a request names by address and id.
func (c Config) find(w http.ResponseWriter, r *http.Request) (mailstore.Message, string, bool) {
	q := r.URL.Query()
	addr := q.Get("address")
	msg, err := c.Store.Find(addr, q.Get("id"))
	if err != nil {
		http.Error(w, "mailbox "+addr+" has no message "+q.Get("id")+": it may have been deleted or moved", http.StatusNotFound)
		return mailstore.Message{}, "", false
	}
	return msg, addr, true
}

func (c Config) message(w http.ResponseWriter, r *http.Request) {
	msg, addr, ok := c.find(w, r)
	if !ok {
		return
	}
	render(w, "message.html", struct {
		Address string
		Msg     mailstore.Message
		Parsed  parsed
	}{addr, msg, parse(msg.Data)})
}

// messageHTML serves a message's HTML body alone, sandboxed, for the message view's iframe.
func (c Config) messageHTML(w http.ResponseWriter, r *http.Request) {
	msg, _, ok := c.find(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Security-Policy", htmlCSP)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(parse(msg.Data).HTML))
}

// messageRaw serves the message as stored, as text: never rendered.
func (c Config) messageRaw(w http.ResponseWriter, r *http.Request) {
	msg, _, ok := c.find(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(msg.Data)
}

// messagePart serves one body part as a download, whatever its type, so a browser never renders it.
func (c Config) messagePart(w http.ResponseWriter, r *http.Request) {
	msg, _, ok := c.find(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	body, _, name, found := part(msg.Data, n)
	if err != nil || !found {
		http.Error(w, "the message has no part "+r.URL.Query().Get("n"), http.StatusNotFound)
		return
	}
	if name == "" {
		name = "part-" + strconv.Itoa(n)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mimeAttachment(name))
	_, _ = w.Write(body)
}

func (c Config) events(w http.ResponseWriter, r *http.Request) {
	f, err := events.ParseFilter(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The newest maxEvents that match, newest first.
	all := c.Events.Since(0, f.Match, 0)
	if len(all) > maxEvents {
		all = all[len(all)-maxEvents:]
	}
	slices.Reverse(all)
	kind := ""
	if len(f.Kinds) == 1 {
		kind = string(f.Kinds[0])
	}
	render(w, "events.html", struct {
		Events []events.Event
		Kinds  []events.Kind
		Kind   string
		Last   uint64
	}{all, events.Kinds(), kind, c.Events.Last()})
}

// mimeAttachment is a Content-Disposition that makes a browser save the part as name.
func mimeAttachment(name string) string {
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}
