// Package control is the emulator's control API: JSON over HTTPS, on the identity platform's port
// under Prefix, with which a test (or `mailoauth emulator ctl`) changes the running emulator — adds
// and removes users, shared mailboxes, apps, secrets and permissions, changes tenant and mailbox
// settings, sets and clears faults of the identity platform, Graph and the mail servers, delivers
// messages, resets everything to the scenario — and reads its event log and web page.
//
// Every request but the web page's carries the token the emulator generated at start
// ("Authorization: Bearer TOKEN"); every change goes through world.Live.Update and is checked by the
// scenario format's rules, so the servers never see a half-made or invalid World. Answers never
// carry a password or a secret, except the one secret an app is given, once, in the answer that
// creates it. The endpoints are listed in docs/emulator.md.
package control

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/tomlconf"
)

// Prefix is where the API is mounted. No path of the identity platform can start with it: Entra's
// paths start with a tenant name, domain or GUID, and none of them may contain an underscore.
const Prefix = "/_emulator/"

// Body limits: a JSON request is small; a message may be as large as Exchange Online accepts by
// default (35 MB).
const (
	maxJSONBody    = 64 << 10
	maxMessageBody = 35 << 20
)

// Config is what the API controls.
type Config struct {
	Live   *world.Live
	Store  *mailstore.Store
	Events *events.Log
	// Token authorises requests; it must be long and random (the emulator makes 32 random bytes).
	Token string
	// NewSecret makes an app's client secret.
	NewSecret func() string
	// UI is the read-only web page, served under Prefix+"ui/" (nil: none). OpenUI serves it without
	// the token, which the emulator does when it listens on loopback only; otherwise a browser gives
	// the token as the password of HTTP basic authentication (any user name).
	UI     http.Handler
	OpenUI bool
	// OnReset, when set, runs at a reset after the World and the mailboxes are the scenario's again:
	// the emulator forgets there what Graph keeps beside the store (its drafts, metadata, throttling).
	OnReset func()
	Now     func() time.Time // nil: time.Now
	Log     *slog.Logger     // nil: discard
}

// api serves one Config.
type api struct {
	Config
	tokenSum [sha256.Size]byte
}

// Handler returns the API's handler, to be mounted at Prefix.
func Handler(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &api{Config: cfg, tokenSum: sha256.Sum256([]byte(cfg.Token))}
	mux := http.NewServeMux()
	a.routes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path == Prefix+"ui" {
			http.Redirect(w, r, Prefix+"ui/", http.StatusMovedPermanently)
			return
		}
		if strings.HasPrefix(r.URL.Path, Prefix+"ui/") {
			a.serveUI(w, r)
			return
		}
		if !a.bearer(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailoauth emulator"`)
			writeError(w, http.StatusUnauthorized, "the control API needs the emulator's token: send Authorization: Bearer with the content of the data directory's control-token file")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// bearer reports whether the request carries the token as "Authorization: Bearer", which is all the
// API accepts: a browser never adds that header by itself, so another site's page cannot make one of
// its users' browsers change the emulator (a basic-auth password, which browsers do resend, opens the
// read-only page only).
func (a *api) bearer(r *http.Request) bool {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && a.isToken(strings.TrimSpace(v))
}

// pageAuthorised reports whether a request for the web page carries the token, as a bearer token or
// as the password of HTTP basic authentication.
func (a *api) pageAuthorised(r *http.Request) bool {
	if a.bearer(r) {
		return true
	}
	_, pass, ok := r.BasicAuth()
	return ok && a.isToken(pass)
}

// isToken compares in constant time: comparing digests takes the same time whatever the length and
// content of the guess.
func (a *api) isToken(given string) bool {
	sum := sha256.Sum256([]byte(given))
	return a.Token != "" && subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

func (a *api) serveUI(w http.ResponseWriter, r *http.Request) {
	if !a.OpenUI && !a.pageAuthorised(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="mailoauth emulator (password: the control token)"`)
		writeError(w, http.StatusUnauthorized, "the web page needs the emulator's token as the password (any user name)")
		return
	}
	if a.UI == nil {
		writeError(w, http.StatusNotFound, "this emulator serves no web page")
		return
	}
	http.StripPrefix(strings.TrimSuffix(Prefix, "/")+"/ui", a.UI).ServeHTTP(w, r)
}

// ---- answers -------------------------------------------------------------------------------------

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// fail answers err: 404 for what does not exist, 400 for the rest (a change the rules refuse). A
// World's errors name keys and values, never secrets.
func fail(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, world.ErrNotFound) {
		status = http.StatusNotFound
	}
	msg := err.Error()
	var es tomlconf.Errors
	if errors.As(err, &es) && len(es) > 1 {
		parts := make([]string, len(es))
		for i, e := range es {
			parts[i] = e.Error()
		}
		msg = strings.Join(parts, "; ")
	}
	writeError(w, status, strings.TrimPrefix(msg, world.ErrNotFound.Error()+": "))
}

// readKeys decodes a JSON object body (at most maxJSONBody) into scenario keys. An empty body is an
// empty object.
func readKeys(w http.ResponseWriter, r *http.Request) (world.Keys, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d KiB; a control request is a small JSON object", maxJSONBody>>10))
		} else {
			writeError(w, http.StatusBadRequest, "the request body could not be read")
		}
		return nil, false
	}
	keys := world.Keys{}
	if len(strings.TrimSpace(string(body))) == 0 {
		return keys, true
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&keys); err != nil || dec.More() {
		writeError(w, http.StatusBadRequest, "the request body is not one JSON object; send the keys as docs/emulator.md lists them")
		return nil, false
	}
	return keys, true
}

// take removes a key that the API reads itself (not the scenario format), of type T.
func take[T any](keys world.Keys, name string) (T, bool, error) {
	var zero T
	v, ok := keys[name]
	if !ok {
		return zero, false, nil
	}
	delete(keys, name)
	t, ok := v.(T)
	if !ok {
		return zero, false, fmt.Errorf("`%s` has the wrong type: see docs/emulator.md for its form", name)
	}
	return t, true, nil
}

// update applies a change to the World and logs it (what and on what, never a value).
func (a *api) update(r *http.Request, f func(w *world.World) error) error {
	err := a.Live.Update(f)
	if err != nil {
		a.Log.Info("control: change refused", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		a.Log.Info("control: change applied", "method", r.Method, "path", r.URL.Path)
	}
	return err
}
