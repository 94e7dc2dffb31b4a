package graph

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"
)

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{"2": 2 * time.Second, "2.128": 2128 * time.Millisecond, "0": 0,
		now.Add(3 * time.Second).Format(http.TimeFormat): 3 * time.Second} {
		if got, ok := retryAfter(in, now); !ok || got != want {
			t.Errorf("%q: %v %v", in, got, ok)
		}
	}
	if _, ok := retryAfter("soon", now); ok {
		t.Error("garbage accepted")
	}
}

func testClient(h http.HandlerFunc) (*Client, *httptest.Server) {
	srv := httptest.NewTLSServer(h)
	c := New(Options{BaseURL: srv.URL + "/v1.0", Tokens: token.Static(&token.Token{AccessToken: "secret-token-value"}), HTTPClient: srv.Client(), Mailbox: "a@b.c"})
	c.BaseDelay = time.Millisecond
	return c, srv
}

func TestRetries5xxThenFails(t *testing.T) {
	var n atomic.Int32
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("request-id", "rid")
		w.WriteHeader(503)
		w.Write([]byte(`{"error":{"code":"ServiceNotAvailable","message":"down"}}`))
	})
	defer srv.Close()
	c.MaxAttempts = 3
	_, err := c.Folders(context.Background())
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != 503 || ge.Code != "ServiceNotAvailable" || n.Load() != 3 {
		t.Fatalf("%v after %d attempts", err, n.Load())
	}
	if want := "graph: 503 ServiceNotAvailable: down (request-id rid)"; err.Error() != want {
		t.Errorf("Error() = %q", err.Error())
	}
	if strings.Contains(err.Error(), "secret-token-value") {
		t.Error("token in error")
	}
}

// TestThrottledBeyondDeadlineFailsAtOnce: a Retry-After that would pass ctx's deadline is not
// waited for: the request fails at once with Graph's 429, saying when to try again.
func TestThrottledBeyondDeadlineFailsAtOnce(t *testing.T) {
	var n atomic.Int32
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(429)
		w.Write([]byte(`{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit."}}`))
	})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.Folders(ctx)
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != 429 || ge.RetryAfter != 30*time.Second || !IsThrottled(err) {
		t.Fatalf("%v: want the 429 with its Retry-After", err)
	}
	if ctx.Err() != nil || n.Load() != 1 {
		t.Fatalf("waited for the deadline (%v) or retried (%d requests)", ctx.Err(), n.Load())
	}
	if !strings.Contains(err.Error(), "throttling") || !strings.Contains(err.Error(), "30s") {
		t.Errorf("the error does not say Graph throttles and when to retry: %v", err)
	}
}

// TestThrottlingIsNotAFailure: 429s with Retry-After are waited out however many come (within the
// deadline): they do not use up MaxAttempts, which bounds failures.
func TestThrottlingIsNotAFailure(t *testing.T) {
	var n atomic.Int32
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 7 {
			w.Header().Set("Retry-After", "0.01")
			w.WriteHeader(429)
			return
		}
		w.Write([]byte(`{"value":[]}`))
	})
	defer srv.Close()
	c.MaxAttempts = 3
	if _, err := c.Folders(context.Background()); err != nil || n.Load() != 8 {
		t.Fatalf("%v after %d requests, want success after 8", err, n.Load())
	}
}

// TestBackoffCutByDeadline: a 5xx backoff cut short by the deadline keeps Graph's answer as the
// news, with the deadline.
func TestBackoffCutByDeadline(t *testing.T) {
	// In process, no network: the 502 comes well within the deadline even on a busy machine.
	c := New(Options{BaseURL: "https://graph.test/v1.0", Tokens: token.Static(&token.Token{AccessToken: "t"}), Mailbox: "a@b.c",
		HTTPClient: &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 502, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		})}})
	c.BaseDelay = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.Folders(ctx)
	var ge *Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ge) || ge.Status != 502 {
		t.Fatalf("%v: want the 502 with the deadline", err)
	}
}

// roundTrip is an http.RoundTripper made of a function.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNoRetryOn4xx(t *testing.T) {
	var n atomic.Int32
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(403)
		w.Write([]byte(`{"error":{"code":"ErrorAccessDenied","message":"Access is denied. Check credentials and try again.","innerError":{"request-id":"x1"}}}`))
	})
	defer srv.Close()
	_, err := c.Folders(context.Background())
	var ge *Error
	if !errors.As(err, &ge) || ge.RequestID != "x1" || n.Load() != 1 {
		t.Fatalf("%v, %d attempts", err, n.Load())
	}
}

func TestNextLinkMustStayOnHost(t *testing.T) {
	c, srv := testClient(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"value":[],"@odata.nextLink":"https://evil.example/v1.0/me/messages?$skip=10"}`))
	})
	defer srv.Close()
	if _, err := c.ListMessages(context.Background(), "", ListOptions{}); err == nil {
		t.Fatal("followed a nextLink to another host (with the token)")
	}
}
