// Package graph is a small Microsoft Graph mail client (v1.0): send mail (with attachments of any
// size up to 150 MB, large ones through upload sessions), list, read, stream, create, flag, move, copy
// and delete messages, keep a folder in sync with delta queries, and list and manage the folder
// tree — for /me (delegated tokens) or /users/{mailbox} (app-only tokens). New makes a client from
// Options; ForAccount from a token.Account; ClientFor one for the proxy's Graph gateway (immutable
// ids, a Limiter shared per mailbox).
//
// It is written on net/http with typed structs on purpose: msgraph-sdk-go covers all of Graph and is
// very large to build (hundreds of generated packages, minutes of compile time and tens of MB of
// binary) for the dozen calls a mail client needs.
//
// Requests carry a token from a token.Source. The client waits out Graph's Retry-After (seconds,
// possibly fractional, or an HTTP date) when ctx's deadline allows and fails at once when it does
// not (IsThrottled); it retries 5xx answers with exponential backoff and jitter, a bounded number of
// times and never past ctx; on 401 InvalidAuthenticationToken it asks a token.Refresher for a fresh
// token once. Failures are *Error with Graph's status, code, message and request-id.
//
// It must never: log a token or put one (nor an upload URL's authtoken) in an error; send a token to
// another host than the API's (a nextLink or deltaLink elsewhere is refused); read an answer
// without a bound (JSON pages are capped, MIME is streamed); exceed its Limiter's requests in flight.
package graph

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/token"
)

// Client is a Graph mail client for one mailbox. Its fields may be set before first use.
type Client struct {
	// MaxAttempts bounds the tries of one request (429 and 5xx retries included); default 5.
	MaxAttempts int
	// BaseDelay is the first 5xx backoff (doubled each time, with jitter); default 500ms.
	BaseDelay time.Duration
	// MaxDelay caps a backoff; a Retry-After longer than it fails the request at once (an *Error
	// whose RetryAfter says when to come back); default 60s.
	MaxDelay time.Duration
	// Progress, if set, is told how many bytes of large attachments have been uploaded.
	Progress func(sent, total int64)

	root   string // https://graph.microsoft.com/v1.0
	prefix string // /me or /users/{mailbox}
	ts     token.Source
	hc     *http.Client

	immutable bool
	lim       *Limiter
	wellKnown wellKnownCache
}

// Options describe a Client.
type Options struct {
	// BaseURL is the Graph API root; empty means https://graph.microsoft.com/v1.0 (a national cloud
	// or a test server has its own).
	BaseURL string
	// Tokens (required) gives the bearer tokens, for Graph's resource (token.Graph). If it is also a
	// token.Refresher, a token that Graph refuses is replaced once.
	Tokens token.Source
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Mailbox is the mailbox to open: empty means the signed-in user's own (/me, delegated tokens
	// only); an address means /users/{Mailbox}, which app-only tokens need and a delegated user
	// with access to another mailbox may use.
	Mailbox string
	// ImmutableIDs asks Graph for immutable ids (Prefer: IdType="ImmutableId" on every request): a
	// message keeps its id when it moves to another folder
	// (https://learn.microsoft.com/graph/outlook-immutable-id).
	ImmutableIDs bool
	// Limiter, if set, bounds this client's requests in flight together with every other client
	// given the same Limiter: share one per mailbox.
	Limiter *Limiter
}

// defaultBaseURL is the Graph API root of Microsoft's global cloud.
const defaultBaseURL = "https://graph.microsoft.com/v1.0"

// New returns a client described by o.
func New(o Options) *Client {
	hc := o.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	root := strings.TrimRight(o.BaseURL, "/")
	if root == "" {
		root = defaultBaseURL
	}
	prefix := "/me"
	if o.Mailbox != "" {
		prefix = "/users/" + url.PathEscape(o.Mailbox)
	}
	return &Client{root: root, prefix: prefix, ts: o.Tokens, hc: hc, immutable: o.ImmutableIDs, lim: o.Limiter}
}

// ForAccount returns a client for an account (*auth.Account is a token.Account): its Graph root, its
// Graph token source, its CAs, and /users/{mailbox} when app-only — or when a delegated account opens
// another mailbox.
func ForAccount(a token.Account) *Client {
	o := accountOptions(a)
	if a.AppOnly() || a.OtherMailbox() {
		o.Mailbox = a.Mailbox()
	}
	return New(o)
}

// ClientFor returns a client like ForAccount's but for the given mailbox (the address the program
// logged in as, for a catch-all; "" is the account's own), asking Graph for immutable ids, its
// requests bounded by lim (nil: unbounded). A delegated account's own mailbox is /me.
func ClientFor(a token.Account, mailbox string, lim *Limiter) *Client {
	o := accountOptions(a)
	o.ImmutableIDs, o.Limiter = true, lim
	switch {
	case mailbox != "" && !strings.EqualFold(mailbox, a.Mailbox()):
		o.Mailbox = mailbox
	case a.AppOnly() || a.OtherMailbox():
		o.Mailbox = a.Mailbox()
	}
	return New(o)
}

// accountOptions are an account's Graph root, tokens and TLS settings.
func accountOptions(a token.Account) Options {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = a.TLSConfig()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return Options{
		BaseURL:    a.Server(token.GraphAPI),
		Tokens:     a.TokenSource(token.Graph),
		HTTPClient: &http.Client{Transport: tr, Timeout: 10 * time.Minute},
	}
}

// Error is a failed Graph request.
type Error struct {
	Status    int    // HTTP status
	Code      string // Graph's error code, e.g. ErrorAccessDenied
	Message   string
	RequestID string
	// RetryAfter is, for a 429 or 5xx, how long Graph asked to wait before trying again (0: it did not
	// say). The client waits it out when ctx's deadline allows; otherwise the request fails at once
	// with this error.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("graph: %d %s", e.Status, e.Code)
	if e.Code == "" {
		s = fmt.Sprintf("graph: HTTP %d", e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (request-id " + e.RequestID + ")"
	}
	switch {
	case e.RetryAfter > 0 && e.Status == http.StatusTooManyRequests:
		s += fmt.Sprintf("; Graph is throttling this mailbox: try again in %v", e.RetryAfter.Round(100*time.Millisecond))
	case e.RetryAfter > 0:
		s += fmt.Sprintf("; Graph asks to try again in %v", e.RetryAfter.Round(100*time.Millisecond))
	}
	return s
}

// IsThrottled says whether err is Graph pacing the mailbox (429, or a 5xx with Retry-After): the
// request may succeed later; *Error.RetryAfter says when.
func IsThrottled(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusTooManyRequests || e.RetryAfter > 0)
}

// IsNotFound says whether err is Graph's 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

func parseError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("request-id")}
	var env struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil {
		e.Code, e.Message = env.Error.Code, env.Error.Message
		if env.Error.InnerError.RequestID != "" {
			e.RequestID = env.Error.InnerError.RequestID
		}
	}
	if e.Code == "" && e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// request is one call.
type request struct {
	method, url string
	body        []byte
	contentType string
	header      map[string]string
	noAuth      bool // upload session URLs carry their own credential
	// stream, if set, gives the body of each attempt (length bytes) instead of body.
	stream func() (io.Reader, error)
	length int64
	// limit bounds an answer read whole (0: maxJSONAnswer).
	limit int64
	// pageSize asks for pages of at most this many items (Prefer: odata.maxpagesize).
	pageSize int
}

// retryAfter reads Retry-After: seconds (possibly fractional) or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		return time.Duration(f * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

func (c *Client) defaults() (attempts int, base, maxDelay time.Duration) {
	attempts, base, maxDelay = c.MaxAttempts, c.BaseDelay, c.MaxDelay
	if attempts <= 0 {
		attempts = 5
	}
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 60 * time.Second
	}
	return
}

// redact strips the query (an upload URL's authtoken) from a transport error's URL.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if i := strings.IndexByte(ue.URL, '?'); i >= 0 {
			ue.URL = ue.URL[:i]
		}
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// do sends a request with retries and returns a 2xx response's headers and body, read whole up to
// the request's limit.
func (c *Client) do(ctx context.Context, rq request) (http.Header, []byte, error) {
	resp, release, err := c.send(ctx, rq)
	if err != nil {
		return nil, nil, err
	}
	defer release()
	body, err := readAll(resp, rq)
	if err != nil {
		return nil, nil, err
	}
	return resp.Header, body, nil
}

// send sends a request with retries and returns a 2xx response with its body unread, and the
// function that closes the body and gives back the request's Limiter slot (held until then, so that
// a streamed body counts as the request in flight it is for Graph).
func (c *Client) send(ctx context.Context, rq request) (*http.Response, func(), error) {
	refreshed := false
	var throttled time.Duration // waited out for a 429's Retry-After so far
	for attempt := 1; ; attempt++ {
		resp, release, err := c.attempt(ctx, rq)
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode < 300 {
			return resp, release, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		release()
		gerr := parseError(resp, body)
		ra, hasRA := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if hasRA && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) {
			gerr.RetryAfter = max(ra, time.Second/10)
		}
		if resp.StatusCode == http.StatusUnauthorized && gerr.Code == "InvalidAuthenticationToken" && !refreshed && !rq.noAuth {
			r, ok := c.ts.(token.Refresher)
			if !ok {
				return nil, nil, gerr
			}
			refreshed = true
			if _, err := r.Refresh(ctx); err != nil {
				return nil, nil, fmt.Errorf("%w (and refreshing the token failed: %w)", gerr, err)
			}
			attempt-- // the refresh retry is not a failure attempt
			continue
		}
		wait, failure, ok := c.retryWait(ctx, gerr, attempt, throttled)
		if !ok {
			return nil, nil, gerr
		}
		if !failure {
			attempt--
			throttled += wait
		}
		if err := sleep(ctx, wait); err != nil {
			// Graph's answer is the news (throttled, failing); the deadline only cut the wait short.
			return nil, nil, fmt.Errorf("%w (the deadline came while waiting %v to retry: %w)", gerr, wait.Round(time.Millisecond), err)
		}
	}
}

// retryWait says whether and how long to wait before trying a failed request again. Graph's
// Retry-After is waited out in full (retrying sooner is refused again) or not at all: when it
// would pass ctx's deadline or MaxDelay the request fails at once, its error saying when to come
// back. A 429 with Retry-After is Graph pacing the mailbox, not a failure (failure false: it does
// not count as an attempt); 5xx answers and a 429 without Retry-After are, and back off.
func (c *Client) retryWait(ctx context.Context, gerr *Error, attempt int, throttled time.Duration) (wait time.Duration, failure, ok bool) {
	attempts, base, maxDelay := c.defaults()
	pacing := gerr.Status == http.StatusTooManyRequests && gerr.RetryAfter > 0
	switch {
	case gerr.Status != http.StatusTooManyRequests && gerr.Status < 500:
		return 0, true, false
	case !pacing && attempt >= attempts:
		return 0, true, false
	case gerr.RetryAfter > 0:
		dl, hasDeadline := ctx.Deadline()
		if hasDeadline && time.Now().Add(gerr.RetryAfter).After(dl) || gerr.RetryAfter > maxDelay ||
			pacing && throttled+gerr.RetryAfter > maxThrottleWait {
			return 0, !pacing, false
		}
		return gerr.RetryAfter, !pacing, true
	}
	d := base << (attempt - 1)
	return min(d/2+rand.N(d/2+1), maxDelay), true, true
}

// maxThrottleWait bounds the time one request spends waiting out Retry-After when ctx has no
// deadline (with one, the deadline bounds it).
const maxThrottleWait = 10 * time.Minute

// maxErrorBody bounds what is read of a failed request's answer (Graph's error JSON is small).
const maxErrorBody = 64 << 10

// maxJSONAnswer is the default bound of an answer read whole: far above a page of messages with
// their headers, far below what would hurt the proxy.
const maxJSONAnswer = 32 << 20

// readAll reads a 2xx answer up to the request's limit.
func readAll(resp *http.Response, rq request) ([]byte, error) {
	limit := rq.limit
	if limit <= 0 {
		limit = maxJSONAnswer
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("graph: reading the answer: %w", redact(err))
	}
	if int64(len(body)) > limit {
		path := resp.Request.URL.Path
		return nil, fmt.Errorf("graph: the answer to %s %s is larger than %d bytes, more than this call reads; ask for fewer items or properties", rq.method, path, limit)
	}
	return body, nil
}

// attempt sends the request once, within a Limiter slot; the slot is given back by release, which
// also closes the response's body.
func (c *Client) attempt(ctx context.Context, rq request) (*http.Response, func(), error) {
	// The request (and its token, which may take the identity platform a while) first: a slot is
	// held only while Graph is asked.
	req, err := c.newRequest(ctx, rq)
	if err != nil {
		return nil, nil, err
	}
	free, err := c.lim.acquire(ctx)
	if err != nil {
		req.Body.Close()
		return nil, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		free()
		if ctx.Err() != nil {
			// Said as Graph's, so that it is not taken for the identity platform's (whose timeout
			// comes back from Token above as an *auth.Error).
			return nil, nil, fmt.Errorf("graph: %s: %s: %w", rq.method, ctxWhat(ctx), ctx.Err())
		}
		return nil, nil, fmt.Errorf("graph: %s: %w", rq.method, redact(err))
	}
	var once sync.Once
	return resp, func() {
		once.Do(func() {
			resp.Body.Close()
			free()
		})
	}, nil
}

// ctxWhat says how ctx ended.
func ctxWhat(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.Canceled) {
		return "cancelled"
	}
	return "no answer in time"
}

// newRequest builds one attempt's HTTP request: body, headers, Prefer and the bearer token.
func (c *Client) newRequest(ctx context.Context, rq request) (*http.Request, error) {
	var tok *token.Token
	if !rq.noAuth {
		var err error
		if tok, err = c.token(ctx); err != nil {
			return nil, err
		}
	}
	var body io.Reader = bytes.NewReader(rq.body)
	if rq.stream != nil {
		r, err := rq.stream()
		if err != nil {
			return nil, err
		}
		body = r
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, body)
	if err != nil {
		if c, ok := body.(io.Closer); ok {
			c.Close()
		}
		return nil, redact(err)
	}
	switch {
	case rq.stream != nil:
		req.ContentLength = rq.length
	case rq.body == nil:
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	var prefer []string
	if c.immutable && !rq.noAuth {
		prefer = append(prefer, `IdType="ImmutableId"`)
	}
	if rq.pageSize > 0 {
		prefer = append(prefer, "odata.maxpagesize="+strconv.Itoa(rq.pageSize))
	}
	if len(prefer) > 0 {
		req.Header.Set("Prefer", strings.Join(prefer, ", "))
	}
	if tok != nil {
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	}
	return req, nil
}

// token is the bearer token of a request; a client without a source, or a source that returns no
// token and no error, is a programming error reported as one rather than a nil dereference.
func (c *Client) token(ctx context.Context) (*token.Token, error) {
	if c.ts == nil {
		return nil, errors.New("graph.Options.Tokens is nil: set it to a token.Source, such as token.Static(tok) or an account's TokenSource(token.Graph)")
	}
	tok, err := c.ts.Token(ctx)
	switch {
	case err != nil:
		return nil, err
	case tok == nil || tok.AccessToken == "":
		return nil, errors.New("graph: the token source returned no access token and no error: a token.Source must return one of them")
	}
	return tok, nil
}

// call sends JSON (in, if not nil) to a path under the mailbox and decodes the answer into out.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	rq := request{method: method, url: c.root + c.prefix + path}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		rq.body, rq.contentType = b, "application/json"
	}
	_, body, err := c.do(ctx, rq)
	if err != nil {
		return err
	}
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("graph: %s %s: unreadable answer: %w", method, path, err)
		}
	}
	return nil
}
