package auth

import (
	"bytes"
	"container/list"
	"io"
	"net/http"
	"strings"
	"sync"
)

// maxUserClients bounds the signed-in users' MSAL clients an account keeps in memory (about
// 10 KB each). A client is needed only to refresh (the hot path and the store serve valid tokens
// without one), so one dropped from memory costs little: it is rebuilt from the user's store entry
// at their next refresh, and no token is lost, since the store holds them all.
const maxUserClients = 128

// userClients are the users' MSAL clients, the least recently used dropped beyond limit. The
// Account's mutex guards it.
type userClients struct {
	limit  int
	order  *list.List // of *userClient, the most recently used first
	byHome map[string]*list.Element
}

type userClient struct {
	home string
	c    *client
}

func newUserClients(limit int) userClients {
	return userClients{limit: limit, order: list.New(), byHome: map[string]*list.Element{}}
}

// get is the user's client, if held, which becomes the most recently used.
func (u *userClients) get(home string) *client {
	e := u.byHome[home]
	if e == nil {
		return nil
	}
	u.order.MoveToFront(e)
	return e.Value.(*userClient).c
}

// add holds c as the user's client, dropping the least recently used beyond the limit. A dropped
// client still in use finishes its call: it writes what it got to the store, as any client does.
func (u *userClients) add(home string, c *client) {
	u.byHome[home] = u.order.PushFront(&userClient{home, c})
	for u.order.Len() > u.limit {
		last := u.order.Back()
		u.order.Remove(last)
		delete(u.byHome, last.Value.(*userClient).home)
	}
}

func (u *userClients) remove(home string) {
	if e := u.byHome[home]; e != nil {
		u.order.Remove(e)
		delete(u.byHome, home)
	}
}

// metadataCache keeps the identity platform's answers about the authority — its OpenID
// configuration and instance discovery — for all the MSAL clients of an account. MSAL caches them
// per client, so each user's client, and each rebuilt one, would otherwise ask again before its
// first token request. Only successful answers are kept, for the account's life, as MSAL keeps
// them for a client's.
type metadataCache struct {
	base http.RoundTripper
	mu   sync.Mutex
	m    map[string]cachedAnswer // by URL
}

type cachedAnswer struct {
	header http.Header
	body   []byte
}

// maxMetadata bounds the answers kept: an account asks about one authority, in a few URLs.
const maxMetadata = 16

func isMetadata(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		(strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") || strings.HasSuffix(r.URL.Path, "/discovery/instance"))
}

func (c *metadataCache) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isMetadata(req) {
		return c.base.RoundTrip(req)
	}
	key := req.URL.String()
	c.mu.Lock()
	a, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return a.response(req), nil
	}
	resp, err := c.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	a = cachedAnswer{header: resp.Header.Clone(), body: body}
	c.mu.Lock()
	if len(c.m) < maxMetadata {
		c.m[key] = a
	}
	c.mu.Unlock()
	return a.response(req), nil
}

func (a cachedAnswer) response(req *http.Request) *http.Response {
	return &http.Response{Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: a.header.Clone(), Body: io.NopCloser(bytes.NewReader(a.body)), ContentLength: int64(len(a.body)), Request: req}
}
