package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/config"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// staticHandler serves the embedded CSS and script; a directory (/static/ itself) is a 404, not a listing.
func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

var funcs = template.FuncMap{
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"clock": func(t time.Time) string {
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"until": func(t time.Time) string { return relative(time.Until(t)) },
	"ago":   func(t time.Time) string { return relative(-time.Since(t)) },
}

// relative says d in words: "in 54 min", "3 h ago".
func relative(d time.Duration) string {
	past := d < 0
	if past {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = strconv.Itoa(int(d/time.Second)) + " s"
	case d < 2*time.Hour:
		s = strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		s = strconv.Itoa(int(d/time.Hour)) + " h"
	default:
		s = strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	if past {
		return s + " ago"
	}
	return "in " + s
}

// pages are parsed once: each is the layout, the shared parts and its own file.
var pages = func() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/card.html"))
	out := map[string]*template.Template{}
	for _, p := range []string{"login", "dashboard", "signin", "doctor", "error", "callback"} {
		out[p] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+p+".html"))
	}
	out["card"] = base
	return out
}()

// view is what every page gets.
type view struct {
	Title    string
	CSRF     string
	Authed   bool
	AuthNone bool
	Data     any
}

var titles = map[string]string{
	"login": "Log in", "dashboard": "Accounts", "signin": "Sign-in", "doctor": "Doctor", "error": "Problem", "callback": "Sign-in",
}

func (c *Console) render(w http.ResponseWriter, status int, page string, s *session, data any) {
	v := view{Title: titles[page], Data: data, AuthNone: c.cfg.Auth == config.ConsoleAuthNone}
	if s != nil {
		v.CSRF, v.Authed = s.csrf, s.authed
	}
	c.write(w, status, pages[page], "layout", v)
}

// renderPlain renders a page for a request without its session (the identity platform's redirect).
func (c *Console) renderPlain(w http.ResponseWriter, status int, page string, data any) {
	c.render(w, status, page, nil, data)
}

// renderFragment renders one account's card, for the page's script to swap in.
func (c *Console) renderFragment(w http.ResponseWriter, name string, s *session, v accountView) {
	v.CSRF = s.csrf
	c.write(w, http.StatusOK, pages["card"], name, v)
}

func (c *Console) write(w http.ResponseWriter, status int, t *template.Template, name string, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		c.log.Error("console page failed", "template", name, "err", err)
		http.Error(w, "The console could not draw this page; see its log.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers a request that cannot be done: JSON for the page's script, a page otherwise.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	var s *session
	if ck, err := r.Cookie(c.cookieName()); err == nil {
		c.mu.Lock()
		s = c.sessions[ck.Value]
		c.mu.Unlock()
	}
	c.render(w, status, "error", s, map[string]any{"Error": msg})
}
