package redis_test

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/redistest"
	"github.com/mailoauth/mailoauth/store/redis"
	"github.com/mailoauth/mailoauth/token"
)

// benchStore is a Redis store keyed with a raw key (argon2id is not what is measured).
func benchStore(b *testing.B, srv *redistest.Server) *redis.Store {
	b.Helper()
	s, err := redis.Open(redis.Options{URL: srv.URL(), Username: srv.User, Password: srv.Password, Prefix: "b:",
		Key: func() ([]byte, error) { return []byte("0123456789abcdef0123456789abcdef"), nil }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func benchLab(b *testing.B) (*emulatortest.Lab, *redistest.Server) {
	return emulatortest.Start(b, emulator.Options{AutoApprove: world.Alice}), redistest.Start(b)
}

func issued(lab *emulatortest.Lab, after uint64) int {
	return len(lab.E.Events.Since(after, func(e events.Event) bool { return e.Kind == events.TokenIssued }, 0))
}

// BenchmarkRedisL1Hit is the hot path with the Redis backend: a valid token served from memory,
// Redis not asked. Method and figures: docs/benchmarks.md.
func BenchmarkRedisL1Hit(b *testing.B) {
	lab, srv := benchLab(b)
	a, err := auth.New(lab.Config, auth.Options{Store: benchStore(b, srv)}).Account("daemon")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.Token(ctx, token.Exchange); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Token(ctx, token.Exchange); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRedisColdFetch is a process's first Token for an account whose valid token another
// process put in Redis: one read from Redis, decrypted and parsed, and no token request.
func BenchmarkRedisColdFetch(b *testing.B) {
	lab, srv := benchLab(b)
	st := benchStore(b, srv)
	ctx := context.Background()
	first, err := auth.New(lab.Config, auth.Options{Store: st}).Account("daemon")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := first.Token(ctx, token.Exchange); err != nil {
		b.Fatal(err)
	}
	before := lab.E.Events.Last()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		a, err := auth.New(lab.Config, auth.Options{Store: st}).Account("daemon") // no memory of its own
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Token(ctx, token.Exchange); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(issued(lab, before))/float64(b.N), "token-requests/op")
}

// BenchmarkRedisFleetRefresh is a fleet refresh: three processes (each its own store connection and
// memory) × 100 goroutines ask at once for a delegated token whose access token must be refreshed.
// It reports the token requests per round, which must be 1, and the time the round takes.
func BenchmarkRedisFleetRefresh(b *testing.B) {
	lab, srv := benchLab(b)
	ctx := context.Background()
	owner := benchStore(b, srv)
	acc, err := auth.New(lab.Config, auth.Options{Store: owner, Prompt: io.Discard}).Account("alice-device")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := acc.Login(ctx, auth.LoginOptions{}); err != nil {
		b.Fatal(err)
	}
	stores := []*redis.Store{benchStore(b, srv), benchStore(b, srv), benchStore(b, srv)}
	before := lab.E.Events.Last()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dropAccessTokens(b, owner)
		var accounts []*auth.Account
		for _, st := range stores { // new processes: nothing in memory
			a, err := auth.New(lab.Config, auth.Options{Store: st}).Account("alice-device")
			if err != nil {
				b.Fatal(err)
			}
			accounts = append(accounts, a)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, a := range accounts {
			for range 100 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					if _, err := a.Token(ctx, token.Exchange); err != nil {
						b.Error(err)
					}
				}()
			}
		}
		b.StartTimer()
		close(start)
		wg.Wait()
	}
	b.ReportMetric(float64(issued(lab, before))/float64(b.N), "token-requests/op")
}

// dropAccessTokens empties every entry's cached access tokens, keeping the refresh tokens.
func dropAccessTokens(b *testing.B, st *redis.Store) {
	ctx := context.Background()
	keys, err := st.Keys(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range keys {
		err := st.Update(ctx, k, func(old []byte) ([]byte, error) {
			var e map[string]any
			if err := json.Unmarshal(old, &e); err != nil {
				return nil, err
			}
			if m, ok := e["msal"].(map[string]any); ok {
				m["AccessToken"] = map[string]any{}
			}
			return json.Marshal(e)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
