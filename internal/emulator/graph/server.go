// Package graph is the emulator's Microsoft Graph mail: a v1.0 subset of /me/... and /users/{id}/...
// (sendMail, drafts with small attachments and upload sessions, send, messages created from MIME,
// the folder tree with create, rename, move and delete, listing with $top, $skip, $select, $filter,
// $orderby, $count and $expand, delta queries, one message as JSON or MIME, PATCH of its writable
// properties, attachments, move, copy, delete, permanentDelete) over the one mail store IMAP, POP3
// and SMTP share, so a message sent one way is read any other way. What it accepts behaves as Graph v1.0
// does; what it does not implement is refused in Graph's error shape with a message saying so.
//
// Tokens are verified by exchange.Authorizer.Verify (signature, lifetime, tenant); this package adds
// Graph's own rules: the Graph audience, scp (delegated) or roles (app-only) per operation, and the
// caller's right to the mailbox. Errors are Graph's JSON ({"error":{"code","message","innerError"}});
// see docs/emulator.md for which situation gives which code and which texts are unconfirmed.
//
// Nothing here logs or returns a token or message content.
package graph

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange"
	"github.com/mailoauth/mailoauth/internal/emulator/exchange/mailstore"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// Config configures the Graph server.
type Config struct {
	World *world.Live // read at each request
	// Events records every request's authentication, accepted or refused, and every delivery (nil: none).
	Events     *events.Log
	Store      *mailstore.Store
	Authorizer *exchange.Authorizer // its Verify checks the tokens
	// MessageIDHost is the right-hand side of the Message-IDs of sent mail (Exchange's server FQDN).
	MessageIDHost string
	Now           func() time.Time // nil: time.Now
	Log           *slog.Logger     // nil: discard
	// RetryAfter is what an injected 429 asks the client to wait (default 1s).
	RetryAfter time.Duration
}

// Limits.
const (
	// MaxJSON is the largest JSON request body (Graph documents 4 MB; the emulator allows a little more
	// so that a 3 MiB attachment, base64-encoded, fits with its envelope).
	MaxJSON = 5 << 20
	// MaxUploadChunk is the largest chunk PUT to an upload session (Graph: "less than 4 MB").
	MaxUploadChunk = 4 << 20
	// MaxAttachment is the largest attachment an upload session takes (Graph: 150 MB).
	MaxAttachment = 150 << 20
	// uploadLifetime is how long an upload session's URL stays valid.
	uploadLifetime = 6 * time.Hour
)

// Server serves Graph mail. Handler gives its http.Handler.
type Server struct {
	cfg  Config
	live *world.Live
	st   *mailstore.Store
	az   *exchange.Authorizer
	now  func() time.Time
	log  *slog.Logger

	meta     metas    // Graph-only properties of messages, by id
	throttle throttle // requests per app and mailbox

	mu       sync.Mutex
	drafts   map[string]*draft      // by id
	sessions map[string]*session    // by authtoken
	faultHit map[string]int         // requests seen per fault, by Fault.ID
	faultRNG map[string]*mrand.Rand // a Probability fault's choices, by Fault.ID
	deltas   deltas                 // delta tokens
	requests int64
	perBox   map[string]int64 // authorized requests by lower-case mailbox address
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.MessageIDHost == "" {
		cfg.MessageIDHost = "emulator.prod.outlook.com"
	}
	return &Server{cfg: cfg, live: cfg.World, st: cfg.Store, az: cfg.Authorizer, now: cfg.Now, log: cfg.Log,
		drafts: map[string]*draft{}, sessions: map[string]*session{}, faultHit: map[string]int{}}
}

// RequestsTo is how many requests have opened the mailbox at address (case-insensitive): every
// request whose token and mailbox were accepted, answered or throttled, since the server started.
// Requests an injected fault answered are not counted here (Requests counts them). Tests compare it
// before and after an operation to measure what the operation cost in Graph requests.
func (s *Server) RequestsTo(address string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perBox[strings.ToLower(address)]
}

// Requests is how many requests the server has received, faulted ones included.
func (s *Server) Requests() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Handler serves /v1.0/... and the upload sessions' URLs (/api/v2.0/...).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// ---- errors ------------------------------------------------------------------------------------

// gerr is an error in Graph's shape.
type gerr struct {
	status  int
	code    string
	message string
}

func (e *gerr) Error() string { return e.code + ": " + e.message }

func errf(status int, code, msg string) *gerr { return &gerr{status, code, msg} }

var (
	errAccessDenied = errf(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.") // observed
	errNotFound     = errf(404, "ErrorItemNotFound", "The specified object was not found in the store., The process failed to get the correct properties.")
	errNoRoute      = errf(400, "BadRequest", "Resource not found for the segment.")
	errMeAppOnly    = errf(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
	errMalformedID  = errf(400, "ErrorInvalidIdMalformed", "Id is malformed.")
	errTooLarge     = errf(413, "ErrorRequestEntityTooLarge", "The request body is too large.")
	// A mailbox Graph cannot reach (world.MailboxSettings.RESTDisabled): inactive, soft-deleted,
	// hosted on-premises or without an Exchange Online licence. Code and message observed
	// (iyear/E5SubBot#39, research/exchange-wire.md §4); the status is 404 as clients report it
	// (O365/python-o365#438: "Client Error: Not Found"), unconfirmed.
	errNotREST = errf(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
	// An application access policy (world.ApplicationAccessPolicy) keeping an app-only token out of
	// the mailbox: 403 ErrorAccessDenied. Microsoft documents the code and "Access to OData is
	// disabled." (Microsoft Graph docs, concepts/auth-limit-mailbox-access.md, "Handling API errors";
	// the 403 in OfficeDev/office-js-docs-pr#2808); current answers add the reason, as here.
	errAccessPolicy = errf(403, "ErrorAccessDenied", "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.")
)

func errBody(msg string) *gerr { return errf(400, "RequestBodyRead", msg) }

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, e *gerr) {
	reqID := w.Header().Get("request-id")
	if reqID == "" {
		reqID = newRequestID()
	}
	clientID := r.Header.Get("client-request-id")
	if clientID == "" {
		clientID = reqID
	}
	inner := map[string]string{"date": s.now().UTC().Format("2006-01-02T15:04:05"), "request-id": reqID, "client-request-id": clientID}
	if e.status == http.StatusTooManyRequests {
		inner["code"], inner["status"], inner["message"] = "429", "429", "Please retry after"
	}
	writeJSON(w, e.status, map[string]any{"error": map[string]any{"code": e.code, "message": e.message, "innerError": inner}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// world is the World as it is now (the control API may change it between requests).
func (s *Server) world() *world.World { return s.live.Load() }

// ---- faults ------------------------------------------------------------------------------------

// activeFault is the World's fault for endpoint "graph" (or "*") that applies to this request.
func (s *Server) activeFault() *world.Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	w := s.world()
	for i := range w.Faults {
		f := &w.Faults[i]
		if f.Endpoint != "graph" && f.Endpoint != "*" {
			continue
		}
		s.faultHit[f.ID]++
		n := s.faultHit[f.ID]
		if n > f.After && (f.Times == 0 || n <= f.After+f.Times) && s.chanceLocked(f) {
			return f
		}
	}
	return nil
}

// chanceLocked draws whether a fault with a Probability fails this request (always, without one).
func (s *Server) chanceLocked(f *world.Fault) bool {
	if f.Probability <= 0 || f.Probability >= 1 {
		return true
	}
	if s.faultRNG == nil {
		s.faultRNG = map[string]*mrand.Rand{}
	}
	r := s.faultRNG[f.ID]
	if r == nil {
		seed := uint64(f.Seed)
		if seed == 0 {
			seed = mrand.Uint64()
		}
		r = mrand.New(mrand.NewPCG(seed, seed))
		s.faultRNG[f.ID] = r
	}
	return r.Float64() < f.Probability
}

// applyFault injects latency, a dropped connection or an error status; it reports whether the
// request was answered.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request) bool {
	f := s.activeFault()
	if f == nil {
		return false
	}
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return true
		}
	}
	if f.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	}
	switch f.Status {
	case 0:
		return false
	case http.StatusTooManyRequests:
		secs := strconv.FormatFloat(s.cfg.RetryAfter.Seconds(), 'f', -1, 64)
		w.Header().Set("Retry-After", secs)
		s.writeErr(w, r, errf(429, "TooManyRequests", "Please retry again later."))
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		s.writeErr(w, r, errf(503, "ServiceNotAvailable", "Service unavailable"))
	case http.StatusGatewayTimeout:
		s.writeErr(w, r, errf(504, "UnknownError", "The request timed out."))
	default:
		s.writeErr(w, r, errf(f.Status, "UnknownError", http.StatusText(f.Status)))
	}
	return true
}

// ---- routing -----------------------------------------------------------------------------------

// route is a parsed request path: the principal ("me" or a user id/UPN) and the segments after it.
type route struct {
	me   bool
	user string
	segs []string // as sent (ids are case-sensitive)
}

// parsePath splits /v1.0/me/... or /v1.0/users/{id}/... It returns ok false for anything else.
func parsePath(p string) (route, bool) {
	rest, ok := strings.CutPrefix(p, "/v1.0/")
	if !ok {
		return route{}, false
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	var rt route
	switch {
	case len(parts) >= 1 && strings.EqualFold(parts[0], "me"):
		rt.me, rt.segs = true, parts[1:]
	case len(parts) >= 2 && strings.EqualFold(parts[0], "users") && parts[1] != "":
		rt.user, rt.segs = parts[1], parts[2:]
		// users('alice@contoso.test') is accepted as users/alice@contoso.test
		if u, ok := strings.CutPrefix(rt.user, "("); ok {
			rt.user = strings.Trim(strings.TrimSuffix(u, ")"), "'")
		}
	case len(parts) >= 1 && strings.HasPrefix(strings.ToLower(parts[0]), "users("):
		u := parts[0][len("users("):]
		rt.user, rt.segs = strings.Trim(strings.TrimSuffix(u, ")"), "'"), parts[1:]
	default:
		return route{}, false
	}
	if len(rt.segs) == 0 {
		return route{}, false
	}
	return rt, true
}

// match says whether segs are pattern's, case-insensitively, with "*" matching any non-empty segment.
func match(segs []string, pattern ...string) bool {
	if len(segs) != len(pattern) {
		return false
	}
	for i, p := range pattern {
		if p == "*" {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if !strings.EqualFold(segs[i], p) {
			return false
		}
	}
	return true
}

// op is what a request needs of the token.
type op int

const (
	opRead op = iota
	opWrite
	opSend
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	w.Header().Set("request-id", reqID)
	if c := r.Header.Get("client-request-id"); c != "" {
		w.Header().Set("client-request-id", c)
	} else {
		w.Header().Set("client-request-id", reqID)
	}
	if immutableIDs(r) {
		w.Header().Set("Preference-Applied", `IdType="ImmutableId"`)
	}
	if s.applyFault(w, r) {
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/v2.0/") {
		s.upload(w, r)
		return
	}
	rt, ok := parsePath(r.URL.Path)
	if !ok {
		s.writeErr(w, r, errf(400, "BadRequest", "Invalid version or resource: the emulator serves /v1.0/me/... and /v1.0/users/{id}/... mail."))
		return
	}
	rt.segs = shortPath(rt.segs)
	h, need := s.handlerFor(r.Method, rt.segs)
	if h == nil {
		s.writeErr(w, r, errNoRoute)
		return
	}
	c, e := s.authorize(r, rt, need)
	s.authEvent(c, e)
	if e != nil {
		if e.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="`+world.GraphAppID+`"`)
		}
		s.writeErr(w, r, e)
		return
	}
	s.mu.Lock()
	if s.perBox == nil {
		s.perBox = map[string]int64{}
	}
	s.perBox[strings.ToLower(c.mailbox)]++
	s.mu.Unlock()
	release, wait, e := s.throttle.admit(s.world().GraphThrottling, c.tok.AppID, c.mailbox, s.now())
	if e != nil {
		s.log.Info("graph: throttled", "app", c.tok.AppID, "mailbox", c.mailbox, "reason", e.message)
		retryAfter(w, wait)
		s.writeErr(w, r, e)
		return
	}
	defer release()
	r.Body = http.MaxBytesReader(w, r.Body, MaxJSON)
	if e := h(w, r, c); e != nil {
		s.writeErr(w, r, e)
	}
}

// call is an authorized request: the mailbox it opens and the verified token.
type call struct {
	mailbox string
	tok     *exchange.Token
	segs    []string
}

type handler func(http.ResponseWriter, *http.Request, *call) *gerr

// shortPath rewrites the longer paths Graph accepts to the short ones the handlers serve:
// mailFolders/{a}/childFolders/{b}/... is mailFolders/{b}/..., and mailFolders/{a}/messages/{id}/...
// is messages/{id}/... (a message's id names it wherever it is).
func shortPath(segs []string) []string {
	for len(segs) >= 4 && strings.EqualFold(segs[0], "mailFolders") && strings.EqualFold(segs[2], "childFolders") {
		segs = append([]string{segs[0]}, segs[3:]...)
	}
	if len(segs) >= 4 && strings.EqualFold(segs[0], "mailFolders") && strings.EqualFold(segs[2], "messages") && !strings.EqualFold(segs[3], "delta") {
		segs = segs[2:]
	}
	return segs
}

func (s *Server) handlerFor(method string, segs []string) (handler, op) {
	switch {
	case match(segs, "sendMail") && method == "POST":
		return s.sendMail, opSend
	case (match(segs, "mailFolders") || match(segs, "mailFolders", "*", "childFolders")) && method == "GET":
		return s.listFolders, opRead
	case (match(segs, "mailFolders") || match(segs, "mailFolders", "*", "childFolders")) && method == "POST":
		return s.createFolder, opWrite
	case match(segs, "mailFolders", "delta") && method == "GET":
		return s.foldersDelta, opRead
	case match(segs, "mailFolders", "*") && method == "GET":
		return s.getFolder, opRead
	case match(segs, "mailFolders", "*") && method == "PATCH":
		return s.patchFolder, opWrite
	case match(segs, "mailFolders", "*") && method == "DELETE":
		return s.deleteFolder, opWrite
	case match(segs, "mailFolders", "*", "move") && method == "POST":
		return s.moveFolder, opWrite
	case match(segs, "mailFolders", "*", "messages") && method == "GET":
		return s.listMessages, opRead
	case match(segs, "messages") && method == "GET":
		return s.listMessages, opRead
	case match(segs, "mailFolders", "*", "messages", "delta") && method == "GET":
		return s.messagesDelta, opRead
	case (match(segs, "messages") || match(segs, "mailFolders", "*", "messages")) && method == "POST":
		return s.createMessage, opWrite
	case match(segs, "messages", "*", "permanentDelete") && method == "POST":
		return s.permanentDelete, opWrite
	case match(segs, "messages", "*") && method == "GET":
		return s.getMessage, opRead
	case match(segs, "messages", "*") && method == "PATCH":
		return s.patchMessage, opWrite
	case match(segs, "messages", "*") && method == "DELETE":
		return s.deleteMessage, opWrite
	case match(segs, "messages", "*", "$value") && method == "GET":
		return s.getMIME, opRead
	case match(segs, "messages", "*", "attachments") && method == "GET":
		return s.listAttachments, opRead
	case match(segs, "messages", "*", "attachments", "*") && method == "GET":
		return s.getAttachment, opRead
	case match(segs, "messages", "*", "attachments") && method == "POST":
		return s.addAttachment, opWrite
	case match(segs, "messages", "*", "attachments", "createUploadSession") && method == "POST":
		return s.createUploadSession, opWrite
	case match(segs, "messages", "*", "send") && method == "POST":
		return s.sendDraft, opSend
	case match(segs, "messages", "*", "move") && method == "POST":
		return s.move, opWrite
	case match(segs, "messages", "*", "copy") && method == "POST":
		return s.copy, opWrite
	}
	return nil, 0
}

// ---- authorization -----------------------------------------------------------------------------

var graphAudiences = []string{world.GraphResource, world.GraphResource + "/", world.GraphAppID}

// permissions an operation accepts: delegated scopes, then application roles.
func permissions(o op) (scopes, roles []string) {
	switch o {
	case opRead:
		return []string{"Mail.Read", "Mail.ReadWrite", "Mail.Read.Shared", "Mail.ReadWrite.Shared"}, []string{"Mail.Read", "Mail.ReadWrite"}
	case opWrite:
		return []string{"Mail.ReadWrite", "Mail.ReadWrite.Shared"}, []string{"Mail.ReadWrite"}
	default:
		return []string{"Mail.Send", "Mail.Send.Shared"}, []string{"Mail.Send"}
	}
}

func hasAny(have, want []string) bool {
	for _, h := range have {
		if i := strings.LastIndexByte(h, '/'); i >= 0 {
			h = h[i+1:]
		}
		for _, w := range want {
			if strings.EqualFold(h, w) {
				return true
			}
		}
	}
	return false
}

// authEvent records an authorization's outcome: Graph's error code when refused.
func (s *Server) authEvent(c *call, e *gerr) {
	ev := events.Event{Kind: events.AuthAccepted, Protocol: "graph"}
	if e != nil {
		ev.Kind, ev.Code, ev.Reason = events.AuthRefused, e.code, e.message
	}
	if c != nil {
		ev.Mailbox = c.mailbox
		if c.tok != nil {
			ev.ClientID = c.tok.AppID
			if c.tok.App != nil {
				ev.App = c.tok.App.Name
			}
			if c.tok.User != nil {
				ev.User = c.tok.User.UPN
			}
		}
	}
	s.cfg.Events.Add(ev)
}

// authorize checks the bearer token and the caller's right to the mailbox the route names.
func (s *Server) authorize(r *http.Request, rt route, o op) (*call, *gerr) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		if raw2, ok2 := strings.CutPrefix(r.Header.Get("Authorization"), "bearer "); ok2 {
			raw, ok = raw2, true
		}
	}
	raw = strings.TrimSpace(raw)
	if !ok || raw == "" {
		return nil, errf(401, "InvalidAuthenticationToken", "Access token is empty.")
	}
	tok, reason, detail := s.az.Verify(raw)
	if reason != exchange.Allowed {
		s.log.Info("graph: access refused", "reason", reason.String(), "detail", detail)
		switch reason {
		case exchange.TokenExpired:
			return nil, errf(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		case exchange.TokenMalformed:
			return nil, errf(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).")
		case exchange.TokenBadSignature:
			return nil, errf(401, "InvalidAuthenticationToken", "Signature verification failed.")
		}
		return nil, errf(401, "InvalidAuthenticationToken", "Access token validation failure.")
	}
	// Refusals from here on return the call so far, so that the event log names the app and user.
	c := &call{tok: tok, segs: rt.segs}
	if !containsFold(graphAudiences, tok.Audience) {
		s.log.Info("graph: access refused", "reason", exchange.TokenWrongAudience.String(), "audience", tok.Audience)
		return c, errf(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
	}
	scopes, roles := permissions(o)
	t := tok.Tenant
	if tok.AppOnly {
		if rt.me {
			return c, errMeAppOnly
		}
		if !hasAny(tok.Roles, roles) || tok.App == nil {
			s.log.Info("graph: access refused", "reason", exchange.MissingRole.String(), "roles", tok.Roles, "need", roles)
			return c, errAccessDenied
		}
	} else {
		if tok.User == nil {
			return c, errf(401, "InvalidAuthenticationToken", "Access token validation failure.")
		}
		if !hasAny(tok.Scopes, scopes) {
			s.log.Info("graph: access refused", "reason", exchange.MissingScope.String(), "scp", strings.Join(tok.Scopes, " "), "need", scopes)
			return c, errAccessDenied
		}
	}
	if rt.me {
		c.mailbox = tok.User.UPN
	} else {
		box, shared := s.resolveMailbox(t, rt.user)
		if box == "" {
			return c, errf(404, "ErrorInvalidUser", "The requested user '"+rt.user+"' is invalid.")
		}
		c.mailbox = box
		if !tok.AppOnly && !strings.EqualFold(box, tok.User.UPN) {
			if shared == nil || !containsFold(shared.FullAccess, tok.User.UPN) {
				s.log.Info("graph: access refused", "reason", exchange.NotMailboxOwner.String(), "user", tok.User.UPN, "mailbox", box)
				return c, errAccessDenied
			}
		}
	}
	if ms := t.MailboxSettingsOf(c.mailbox); ms != nil && ms.RESTDisabled {
		s.log.Info("graph: mailbox not enabled for REST", "mailbox", c.mailbox)
		return c, errNotREST
	}
	if tok.AppOnly && !t.GraphAppAccess(tok.App, c.mailbox) {
		s.log.Info("graph: access refused", "reason", "application access policy", "app", tok.App.Name, "mailbox", c.mailbox)
		return c, errAccessPolicy
	}
	s.st.Ensure(c.mailbox)
	return c, nil
}

// resolveMailbox finds a mailbox of tenant t by address or object id.
func (s *Server) resolveMailbox(t *world.Tenant, ref string) (string, *world.SharedMailbox) {
	for _, u := range t.Users {
		if strings.EqualFold(u.UPN, ref) || (u.ObjectID != "" && strings.EqualFold(u.ObjectID, ref)) {
			return u.UPN, nil
		}
	}
	for _, m := range t.SharedMailboxes {
		if strings.EqualFold(m.Address, ref) || (m.ObjectID != "" && strings.EqualFold(m.ObjectID, ref)) {
			return m.Address, m
		}
	}
	return "", nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// displayName of a mailbox address in the World ("" if none).
func (s *Server) displayName(addr string) string {
	t := s.world().TenantForUPN(addr)
	if t == nil {
		return ""
	}
	if u := t.User(addr); u != nil {
		return u.DisplayName
	}
	if m := t.SharedMailbox(addr); m != nil {
		return m.DisplayName
	}
	return ""
}

// readJSON decodes a request body into v.
func readJSON(r *http.Request, v any) *gerr {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if asMaxBytes(err, &mbe) {
			return errTooLarge
		}
		return errBody("The request body cannot be read.")
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return errf(400, "ErrorInvalidRequest", "Empty Payload. JSON content expected.")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errBody("Cannot read the request body: " + jsonErrText(err))
	}
	return nil
}

// Reset forgets what Graph keeps beside the mail store — drafts, upload sessions, delta tokens, messages'
// categories, importance and flags, throttling windows and fault counters — for the emulator's reset
// to its scenario, whose caller empties the store. Requests in flight finish with what they hold.
func (s *Server) Reset() {
	s.mu.Lock()
	s.drafts, s.sessions, s.faultHit, s.faultRNG = map[string]*draft{}, map[string]*session{}, map[string]int{}, nil
	s.deltas = deltas{}
	s.mu.Unlock()
	s.meta.mu.Lock()
	s.meta.m = nil
	s.meta.mu.Unlock()
	// In-flight counts stay: the requests holding them release them when they end.
	s.throttle.mu.Lock()
	if s.throttle.budgets != nil {
		s.throttle.budgets = map[string]*budget{}
	}
	s.throttle.mu.Unlock()
}
