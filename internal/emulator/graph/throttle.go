package graph

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// Graph throttles Outlook resources per app per mailbox: 4 requests in flight, 10,000 requests per
// 10 minutes (Microsoft Graph docs, throttling-limits.md, "Outlook service limits"; the World's
// GraphThrottling scales them). Both answer 429 ApplicationThrottled with Retry-After.

// errConcurrency is Graph's answer to a fifth request in flight (observed:
// magodo/terraform-provider-outlook#21: 429 {"code":"ApplicationThrottled","message":"Application is
// over its MailboxConcurrency limit."}).
var errConcurrency = errf(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")

// errBudget is the answer beyond the request budget. The code is Graph's; the text follows the
// concurrency one's pattern and is unconfirmed.
var errBudget = errf(429, "ApplicationThrottled", "Application is over its MailboxRequests limit.")

// throttle counts requests per app and mailbox.
type throttle struct {
	mu       sync.Mutex
	inflight map[string]int
	budgets  map[string]*budget
}

// budget is one app's requests to one mailbox in the current window.
type budget struct {
	start time.Time
	n     int
}

// admit lets a request in, or says how long to wait. release must be called when an admitted
// request ends.
func (t *throttle) admit(g world.GraphThrottling, app, mailbox string, now time.Time) (release func(), wait time.Duration, e *gerr) {
	if g.Off {
		return func() {}, 0, nil
	}
	concurrent, requests, window := g.Limits()
	key := app + "\x00" + strings.ToLower(mailbox)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inflight == nil {
		t.inflight, t.budgets = map[string]int{}, map[string]*budget{}
	}
	if t.inflight[key] >= concurrent {
		return nil, time.Second, errConcurrency
	}
	b := t.budgets[key]
	if b == nil || now.Sub(b.start) >= window {
		b = &budget{start: now}
		t.budgets[key] = b
	}
	if b.n >= requests {
		return nil, b.start.Add(window).Sub(now), errBudget
	}
	b.n++
	t.inflight[key]++
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.inflight[key]--; t.inflight[key] <= 0 {
			delete(t.inflight, key)
		}
	}, 0, nil
}

// retryAfter writes Retry-After in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
}
