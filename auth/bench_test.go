package auth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
)

// BenchmarkCachedToken is the hot path: a valid token served from memory. Method and figures:
// docs/benchmarks.md.
func BenchmarkCachedToken(b *testing.B) {
	e := newEnv(b, nil, "", nil)
	m := e.manager(b, nil)
	a, err := m.Account("daemon")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.Token(ctx, token.Exchange); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Token(ctx, token.Exchange); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSingleFlight1000 has 1,000 goroutines ask at once for a token that must be refreshed (the
// world's access tokens live 4 minutes, inside the 5-minute margin, so every round refreshes): it
// reports the token requests per round, which must be 1, and the time for the whole round.
func BenchmarkSingleFlight1000(b *testing.B) {
	w := world.Default()
	w.Tokens.AccessToken = 4 * time.Minute
	e := newEnv(b, w, world.Alice, nil)
	m := e.manager(b, nil)
	a, err := m.Account("alice-device")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.Login(ctx, auth.LoginOptions{}); err != nil {
		b.Fatal(err)
	}
	before := e.tokens.Load()
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 1000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := a.Token(ctx, token.Exchange); err != nil {
					b.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	b.ReportMetric(float64(e.tokens.Load()-before)/float64(b.N), "token-requests/op")
}
