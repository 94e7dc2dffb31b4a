package graph

import (
	"context"
	"fmt"
)

// Limiter bounds the requests in flight to one mailbox: Graph allows 4 concurrent requests per app
// per mailbox (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits). Share one
// among every Client of a mailbox (Options.Limiter, ClientFor). A request holds its slot until its
// answer is read, a streamed one (OpenMIME) until its body is closed, and gives it back while it
// waits to retry.
type Limiter struct{ slots chan struct{} }

// NewLimiter returns a Limiter of n slots (n < 1: 4).
func NewLimiter(n int) *Limiter {
	if n < 1 {
		n = 4
	}
	return &Limiter{slots: make(chan struct{}, n)}
}

// acquire waits for a slot (a nil Limiter has as many as asked) and returns the function that gives
// it back.
func (l *Limiter) acquire(ctx context.Context) (func(), error) {
	if l == nil {
		return func() {}, nil
	}
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, nil
	default:
	}
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("graph: %s waiting for one of the mailbox's %d request slots (other requests to it are still running): %w", ctxWhat(ctx), cap(l.slots), ctx.Err())
	}
}
