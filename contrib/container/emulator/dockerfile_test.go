// Package emulator_test proves the emulator's Dockerfile without a Docker engine: it builds the
// binary as the Dockerfile does (static, CGO_ENABLED=0) and runs it with the Dockerfile's own
// ENTRYPOINT and CMD arguments, read from the file.
package emulator_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// instruction returns the JSON (exec form) argument list of a Dockerfile instruction.
func instruction(t *testing.T, dockerfile, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `\s+(\[.*\])\s*$`).FindStringSubmatch(dockerfile)
	if m == nil {
		t.Fatalf("the Dockerfile has no %s in exec form", name)
	}
	var args []string
	if err := json.Unmarshal([]byte(m[1]), &args); err != nil {
		t.Fatalf("%s %s: %v", name, m[1], err)
	}
	return args
}

// flagValue returns the value after flag in args.
func flagValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("the Dockerfile's arguments have no %s: %q", flag, args)
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestDockerfileRuns(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	entry, cmdArgs := instruction(t, df, "ENTRYPOINT"), instruction(t, df, "CMD")
	args := append(append([]string{}, entry[1:]...), cmdArgs...)
	if flagValue(t, args, "--listen") != "0.0.0.0" || flagValue(t, args, "--data") != "/data" {
		t.Fatalf("the container must listen on every interface and keep its data in /data: %q", args)
	}
	if !strings.Contains(df, "\nVOLUME /data\n") || !regexp.MustCompile(`(?m)^USER 65532`).MatchString(df) {
		t.Error("the Dockerfile must declare /data a volume and run as the non-root user")
	}
	advertise := flagValue(t, args, "--advertise")

	// The ports the Dockerfile fixes must be the ones it exposes. The test runs them on free ports
	// instead (the Dockerfile's may be taken on a shared machine), and /data in a temporary directory.
	ports := map[string]int{}
	var remapped []string
	for _, kv := range strings.Split(flagValue(t, args, "--ports"), ",") {
		name, p, _ := strings.Cut(kv, "=")
		if !regexp.MustCompile(`(?m)^EXPOSE .*\b` + p + `\b`).MatchString(df) {
			t.Errorf("port %s (%s) is not EXPOSEd", p, name)
		}
		ports[name] = freePort(t)
		remapped = append(remapped, fmt.Sprintf("%s=%d", name, ports[name]))
	}
	data := t.TempDir()
	for i, a := range args {
		switch {
		case i > 0 && args[i-1] == "--data":
			args[i] = data
		case i > 0 && args[i-1] == "--ports":
			args[i] = strings.Join(remapped, ",")
		default:
			args[i] = a
		}
	}

	// The binary, built as the Dockerfile's build stage builds it: static.
	bin := filepath.Join(t.TempDir(), "mailoauth")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/mailoauth/mailoauth/cmd/mailoauth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if f, err := elf.Open(bin); err == nil {
		if interp := f.Section(".interp"); interp != nil {
			t.Error("the binary is dynamically linked; the distroless/static image has no loader")
		}
		f.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	// Its banner comes once the data directory is written and every server listens.
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "mailoauth emulator running") {
		t.Fatalf("the emulator did not start: %q %v", lines.Text(), lines.Err())
	}
	// Listening on every interface, the banner says the web page wants the control token.
	var webLine string
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "  try ") {
		if strings.HasPrefix(lines.Text(), "  web page ") {
			webLine = lines.Text()
		}
	}
	if !strings.Contains(webLine, "the control token as password") {
		t.Errorf("banner's web page line %q does not say the page wants the control token", webLine)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	ca, err := os.ReadFile(filepath.Join(data, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("ca.pem holds no certificate")
	}
	cfg, err := os.ReadFile(filepath.Join(data, "mailoauth.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The written config is one mailoauth loads (its proxy listeners stay on loopback).
	check := exec.Command(bin, "--config", filepath.Join(data, "mailoauth.toml"), "accounts")
	check.Env = cmd.Env
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("mailoauth accounts with the written config: %v\n%s", err, out)
	}
	authority := "https://" + net.JoinHostPort(advertise, strconv.Itoa(ports["identity"]))
	for _, want := range []string{"authority = '" + authority + "'", "imap = '" + net.JoinHostPort(advertise, strconv.Itoa(ports["imap"])) + "'"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("mailoauth.toml lacks %s", want)
		}
	}

	// Clients reach it by the advertised name (resolved here to whichever address the machine has
	// that is not loopback, when it has one: the listener is on every interface) and by localhost,
	// and the certificate holds for both.
	addr := "127.0.0.1"
	if ip := externalIP(); ip != "" {
		addr = ip
	}
	for _, name := range []string{advertise, "localhost"} {
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: name},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(addr, strconv.Itoa(ports["identity"])))
			},
		}}
		resp, err := client.Get("https://" + net.JoinHostPort(name, strconv.Itoa(ports["identity"])) + "/emulator/ca.pem")
		if err != nil {
			t.Fatalf("GET /emulator/ca.pem as %s via %s: %v", name, addr, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != string(ca) {
			t.Errorf("/emulator/ca.pem as %s: %d, not the data directory's ca.pem", name, resp.StatusCode)
		}
	}
	// The mail servers too: IMAP's greeting over TLS, by the advertised name.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp",
		net.JoinHostPort(addr, strconv.Itoa(ports["imap"])), &tls.Config{RootCAs: pool, ServerName: advertise})
	if err != nil {
		t.Fatalf("IMAP over TLS as %s: %v", advertise, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	greeting, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(greeting, "* OK") {
		t.Errorf("IMAP greeting %q", greeting)
	}
}

// externalIP is an IPv4 address of this machine that is not loopback ("" when it has none).
func externalIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	return ""
}
