// Package redistest starts a real redis-server for tests: on loopback, on a free port, with a
// throwaway configuration and data directory, stopped when the test ends. Tests skip without
// redis-server, except under the README's test command, which sets MAILOAUTH_REQUIRE_REDIS=1 and
// installs it: there they fail. It is for tests only and never touches a Redis it did not start.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/testpki"
)

// RequireEnv is the variable that turns a missing redis-server from a skip into a failure.
const RequireEnv = "MAILOAUTH_REQUIRE_REDIS"

// Server is a redis-server a test started.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	Port int
	// User and Password are an ACL user with every right but the dangerous commands (KEYS, FLUSHALL, CONFIG...)
	// on every key, as docs/fleet.md advises; the default user is off.
	User, Password string
	// CAFile is the PEM file of the CA that signed the server's certificate (StartTLS only).
	CAFile string
	tls    bool
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts a redis-server with persistence (appendonly, fsync always), so that Restart keeps
// what was written.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartTLS is Start with TLS only (rediss://), under a throwaway CA written to CAFile.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redis-server is not installed and %s=1: install the redis-server package", RequireEnv)
		}
		t.Skip("redis-server is not installed (the README's test command installs it)")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), User: "mailoauth", Password: "test-" + strconv.Itoa(os.Getpid()), tls: useTLS}
	if useTLS {
		cert, key, _, err := testpki.New()
		if err != nil {
			t.Fatal(err)
		}
		ca := cert[bytes.Index(cert, []byte("-----END CERTIFICATE-----\n"))+len("-----END CERTIFICATE-----\n"):] // the chain's second: the CA
		s.CAFile = filepath.Join(s.dir, "ca.pem")
		for name, b := range map[string][]byte{"cert.pem": cert, "key.pem": key, "ca.pem": ca} {
			if err := os.WriteFile(filepath.Join(s.dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	var last error
	for range 5 { // a free port can be taken by someone else before redis-server binds it
		if s.Port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if last = s.start(); last == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("start redis-server: %v", last)
	return nil
}

// URL is the server's redis:// (rediss:// with TLS) URL, without credentials.
func (s *Server) URL() string {
	if s.tls {
		return fmt.Sprintf("rediss://localhost:%d", s.Port)
	}
	return fmt.Sprintf("redis://127.0.0.1:%d", s.Port)
}

// Addr is host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	port := []string{"port " + strconv.Itoa(s.Port)}
	if s.tls {
		port = []string{"port 0", "tls-port " + strconv.Itoa(s.Port), "tls-cert-file " + filepath.Join(s.dir, "cert.pem"),
			"tls-key-file " + filepath.Join(s.dir, "key.pem"), "tls-ca-cert-file " + s.CAFile, "tls-auth-clients no"}
	}
	conf := strings.Join(append(port,
		"bind 127.0.0.1",
		"dir "+s.dir,
		"daemonize no",
		"appendonly yes",
		"appendfsync always",
		`save ""`,
		"logfile \"\"",
		"user default off",
		fmt.Sprintf("user %s on >%s ~* +@all -@dangerous", s.User, s.Password), // what docs/fleet.md advises
	), "\n") + "\n"
	path := filepath.Join(s.dir, "redis.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(s.bin, path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan bool, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if !sent {
				log.WriteString(sc.Text() + "\n")
			}
			if !sent && strings.Contains(sc.Text(), "Ready to accept connections") {
				ready <- true
				sent = true
			}
		}
		if !sent {
			ready <- false
		}
	}()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case ok := <-ready:
		if !ok {
			<-exited
			return fmt.Errorf("redis-server exited: %s", log.String())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("redis-server did not start within a minute")
	}
	s.cmd, s.exited = cmd, exited
	return nil
}

// Kill kills the server (SIGKILL: an outage, not a shutdown) and waits for it to exit.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart starts the server again on the same port, with what it had written.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for range 5 { // redis-server binds with SO_REUSEADDR; a retry covers a slow exit
		if err = s.start(); err == nil {
			return
		}
	}
	s.t.Fatalf("restart redis-server on port %d: %v", s.Port, err)
}
