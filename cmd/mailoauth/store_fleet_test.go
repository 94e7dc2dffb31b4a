package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
	"github.com/mailoauth/mailoauth/internal/emulator/events"
	"github.com/mailoauth/mailoauth/internal/emulator/world"
	"github.com/mailoauth/mailoauth/internal/redistest"
	"github.com/mailoauth/mailoauth/store"
)

// fleet is an emulator and a Redis, with a configuration whose [store] is that Redis.
type fleet struct {
	lab   *emulatortest.Lab
	redis *redistest.Server
	cfg   string // the configuration file
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{lab: emulatortest.Start(t, emulator.Options{AutoApprove: world.Alice}), redis: redistest.Start(t)}
	f.write(t, "redis-password.txt", f.redis.Password+"\n")
	// A raw key, not a passphrase: twenty processes each running argon2id (64 MiB) would test memory.
	f.write(t, "store.key", strings.Repeat("ab", 32)+"\n")
	f.cfg = f.config(t, "fleet.toml", f.redisStore("tokens"))
	return f
}

func (f *fleet) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.lab.Dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// redisStore is the [store] of the fleet's Redis, its file path (for migrate) path.
func (f *fleet) redisStore(path string) config.Store {
	return config.Store{Backend: config.BackendRedis, URL: f.redis.URL(), Username: f.redis.User,
		PasswordFile: "redis-password.txt", KeyFile: "store.key", Prefix: "fleet:", Path: path}
}

// config writes the emulator's configuration with s as its [store] and returns its path.
func (f *fleet) config(t *testing.T, name string, s config.Store) string {
	t.Helper()
	c, err := f.lab.E.Config()
	if err != nil {
		t.Fatal(err)
	}
	c.Store = s
	b, err := toml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	f.write(t, name, string(b))
	return filepath.Join(f.lab.Dir, name)
}

// dropAccessTokens removes every cached access token from the store, keeping the refresh tokens:
// whoever asks next must refresh.
func (f *fleet) dropAccessTokens(t *testing.T) {
	t.Helper()
	c, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(c.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(st)
	ctx := context.Background()
	keys, err := st.Keys(ctx)
	if err != nil || len(keys) == 0 {
		t.Fatalf("the Redis store holds %v, %v after the login", keys, err)
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
			t.Fatal(err)
		}
	}
}

// issued counts the tokens the identity platform issued after the event cursor.
func (f *fleet) issued(after uint64) int {
	return len(f.lab.E.Events.Since(after, func(e events.Event) bool { return e.Kind == events.TokenIssued }, 0))
}

// buildCLI builds the mailoauth binary into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mailoauth")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Twenty `mailoauth token` processes on one account whose access token must be refreshed, sharing
// a Redis store: exactly one token request reaches the identity platform, and all twenty print the
// token it issued.
func TestFleetOneRefresh(t *testing.T) {
	f := startFleet(t)
	bin := buildCLI(t)
	ctx := context.Background()
	if code, out, errs := runCLI(t, ctx, "--config", f.cfg, "login", "alice-device"); code != exitOK {
		t.Fatalf("login: exit %d, %q, %q", code, out, errs)
	}
	f.dropAccessTokens(t)
	before := f.lab.E.Events.Last()
	const n = 20
	outs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out, errb bytes.Buffer
			cmd := exec.Command(bin, "--config", f.cfg, "token", "alice-device")
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Errorf("process %d: %v: %s", i, err, errb.String())
			}
			outs[i] = out.String()
		}()
	}
	wg.Wait()
	if got := f.issued(before); got != 1 {
		t.Fatalf("%d processes made %d token requests; want 1", n, got)
	}
	for i, o := range outs {
		if o != outs[0] || strings.Count(o, ".") != 2 {
			t.Fatalf("process %d printed another token than process 0 (or none)", i)
		}
	}
}

// Tokens signed in with a file store are migrated to Redis and served from there without a
// request; migrated back to a new file, they are served from it; accounts says where they live.
func TestStoreMigrate(t *testing.T) {
	f := startFleet(t)
	ctx := context.Background()
	cli := func(cfg string, args ...string) (int, string, string) {
		return runCLI(t, ctx, append([]string{"--config", cfg}, args...)...)
	}
	fileCfg := f.config(t, "file.toml", config.Store{Backend: config.BackendFile, Path: "tokens", KeyFile: "store.key"})
	if code, out, errs := cli(fileCfg, "login", "alice-device"); code != exitOK {
		t.Fatalf("login: exit %d, %q, %q", code, out, errs)
	}
	_, want, _ := cli(fileCfg, "token", "alice-device")
	code, out, errs := cli(f.cfg, "store", "migrate", "--from", "file", "--to", "redis")
	if code != exitOK || !strings.Contains(out, "Copied 1 entries from file ") || !strings.Contains(out, "to redis "+f.redis.URL()+" (prefix fleet:)") {
		t.Fatalf("migrate to redis: exit %d, %q, %q", code, out, errs)
	}
	before := f.lab.E.Events.Last()
	if _, got, _ := cli(f.cfg, "token", "alice-device"); got != want || f.issued(before) != 0 {
		t.Fatalf("token from Redis after the migration: the same token %v, %d requests", got == want, f.issued(before))
	}
	if _, out, _ := cli(f.cfg, "accounts"); !strings.Contains(out, "Tokens are kept in redis "+f.redis.URL()+" (prefix fleet:).") {
		t.Fatalf("accounts does not say the tokens are in Redis:\n%s", out)
	}
	back := f.config(t, "back.toml", f.redisStore("back"))
	if code, out, errs := cli(back, "store", "migrate", "--from", "redis", "--to", "file"); code != exitOK || !strings.Contains(out, "Copied 1 entries") {
		t.Fatalf("migrate back: exit %d, %q, %q", code, out, errs)
	}
	backFile := f.config(t, "backfile.toml", config.Store{Backend: config.BackendFile, Path: "back", KeyFile: "store.key"})
	if _, got, _ := cli(backFile, "token", "alice-device"); got != want || f.issued(before) != 0 {
		t.Fatalf("token from the file migrated back: the same token %v, %d requests", got == want, f.issued(before))
	}
	if code, _, errs := cli(f.cfg, "store", "migrate", "--from", "redis", "--to", "redis"); code != exitUsage || !strings.Contains(errs, "name two backends") {
		t.Fatalf("migrate to itself: exit %d, %q", code, errs)
	}
}

// The doctor's store link checks the Redis store: with Redis up it opens; with Redis down it is one
// finding, MO-STORE-UNREACHABLE, before anything is asked of the identity platform.
func TestDoctorRedisStore(t *testing.T) {
	f := startFleet(t)
	ctx := context.Background()
	if code, out, errs := runCLI(t, ctx, "--config", f.cfg, "token", "daemon"); code != exitOK {
		t.Fatalf("token daemon: exit %d, %q, %q", code, out, errs)
	}
	if code, out, errs := runCLI(t, ctx, "--config", f.cfg, "doctor", "daemon"); code != exitOK || !strings.Contains(out, "✓ store") {
		t.Fatalf("doctor with Redis up: exit %d\n%s\n%s", code, out, errs)
	}
	f.redis.Kill()
	code, out, errs := runCLI(t, ctx, "--config", f.cfg, "doctor", "daemon")
	if code != exitUsage || strings.Count(out, "finding ") != 1 || !strings.Contains(out, "finding MO-STORE-UNREACHABLE:") ||
		!strings.Contains(out, "✗ store") || strings.Contains(out, "discovery") || strings.Contains(out+errs, f.redis.Password) {
		t.Fatalf("doctor with Redis down: exit %d\n%s\n%s", code, out, errs)
	}
}

// A proxy on a Redis store is ready (/readyz 200) while Redis can be reached, not ready (503, saying
// why) while it cannot, and ready again when it is back; /healthz stays 200 throughout.
func TestProxyReadyz(t *testing.T) {
	f := startFleet(t)
	admin := freeAddr(t)
	c, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.config(t, "proxy.toml", c.Store)
	text, _ := os.ReadFile(cfg)
	f.write(t, "proxy.toml", strings.Replace(string(text), "[proxy]\n", "[proxy]\nadmin = '"+admin+"'\n", 1))

	ctx, cancel := context.WithCancel(context.Background())
	var out, logs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", cfg, "proxy", "--drain", "1s"}, strings.NewReader(""), &out, &logs)
	}()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), "admin endpoint listening"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy never listened on its admin address:\n%s", logs.String())
		}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (int, string) {
		t.Helper()
		r, err := client.Get("http://" + admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz with Redis up: %d %q", code, body)
	}
	f.redis.Kill()
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "cannot be reached") || strings.Contains(body, f.redis.Password) {
		t.Fatalf("/readyz with Redis down: %d %q; want 503 saying why", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz with Redis down: %d; want 200 (the process is alive)", code)
	}
	f.redis.Restart()
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with Redis back: %d %q", code, body)
	}
}

// Three proxy processes sharing one Redis store, 300 concurrent IMAP logins spread over them for an
// account whose token none of them holds yet: exactly one token request reaches the identity platform.
func TestFleetProxies(t *testing.T) {
	f := startFleet(t)
	bin := buildCLI(t)
	c, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := range 3 {
		p := *c.Proxy
		p.Listeners = []config.Listener{{Protocol: config.ProtocolIMAP, Listen: freeAddr(t), LocalTLS: config.LocalTLSNone}}
		file, err := f.lab.E.Config()
		if err != nil {
			t.Fatal(err)
		}
		file.Store, file.Proxy = c.Store, &p
		b, err := toml.Marshal(file)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("proxy%d.toml", i)
		f.write(t, name, string(b))
		startProxyProcess(t, bin, filepath.Join(f.lab.Dir, name))
		addrs = append(addrs, p.Listeners[0].Listen)
	}
	before := f.lab.E.Events.Last()
	const logins = 300
	var wg sync.WaitGroup
	for i := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l, err := imapLogin(addrs[i%3]); err != nil || !strings.HasPrefix(l, "a OK") {
				t.Errorf("login %d through proxy %d: %q %v", i, i%3, l, err)
			}
		}()
	}
	wg.Wait()
	if got := f.issued(before); got != 1 {
		t.Fatalf("%d logins over 3 proxy processes made %d token requests; want 1", logins, got)
	}
}

// startProxyProcess runs `mailoauth proxy` with cfg until the test ends, and returns once it listens.
func startProxyProcess(t *testing.T, bin, cfg string) {
	t.Helper()
	cmd := exec.Command(bin, "--config", cfg, "--log-level", "info", "proxy", "--drain", "1s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	listening := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if !sent && strings.Contains(sc.Text(), "msg=listening") {
				listening <- true
				sent = true
			}
		}
		if !sent {
			listening <- false
		}
	}()
	select {
	case ok := <-listening:
		if !ok {
			t.Fatal("the proxy process exited before it listened")
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the proxy process did not listen within 2 minutes")
	}
}

// imapLogin logs in to an IMAP proxy as the emulator's alice and returns the LOGIN's tagged answer.
func imapLogin(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Minute)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Minute))
	r := bufio.NewReader(c)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		return l, err
	}
	fmt.Fprintf(c, "a LOGIN %q %q\r\n", world.Alice, emulator.ProxyPassword)
	for {
		l, err := r.ReadString('\n')
		if err != nil || strings.HasPrefix(l, "a ") {
			return l, err
		}
	}
}
