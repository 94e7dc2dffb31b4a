// Package proxy_test proves the proxy's Dockerfile without a Docker engine (none runs where the tests
// do): it builds the binary with the Dockerfile's own go build line (static, CGO_ENABLED=0), runs its
// --version, and runs the Dockerfile's ENTRYPOINT and CMD with --check against a real configuration.
package proxy_test

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/internal/emulator/emulatortest"
)

func TestDockerfileBinary(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{"\nFROM gcr.io/distroless/static-debian12:nonroot\n", "\nUSER 65532:65532\n"} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile lacks %q: the image must have no shell and run as a non-root user", strings.TrimSpace(want))
		}
	}
	// The build stage's go build line, run here with the same flags.
	m := regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 go build (.*) -o /out/mailoauth \./cmd/mailoauth`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("the Dockerfile has no static go build line")
	}
	bin := filepath.Join(t.TempDir(), "mailoauth")
	args := []string{"build"}
	for _, w := range regexp.MustCompile(`(?:[^\s"]+|"[^"]*")+`).FindAllString(m[1], -1) { // shell words
		args = append(args, strings.ReplaceAll(w, `"`, ""))
	}
	build := exec.Command("go", append(args, "-o", bin, "github.com/mailoauth/mailoauth/cmd/mailoauth")...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	if f.Section(".interp") != nil {
		t.Error("the binary is dynamically linked; the distroless/static image has no loader")
	}
	f.Close()
	env := []string{"HOME=" + t.TempDir(), "XDG_STATE_HOME=" + t.TempDir()}
	cmd := exec.Command(bin, "--version")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "mailoauth ") {
		t.Fatalf("--version: %v, %q", err, out)
	}

	entry, cmdArgs := execForm(t, df, "ENTRYPOINT"), execForm(t, df, "CMD")
	lab := emulatortest.Start(t, emulator.Options{})
	run := append(append([]string{}, entry[1:]...), cmdArgs...)
	for i := range run {
		if i > 0 && run[i-1] == "--config" {
			run[i] = lab.Path
		}
	}
	cmd = exec.Command(bin, append(run, "--check")...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "the proxy configuration is valid") {
		t.Fatalf("the image's command with --check: %v\n%s", err, out)
	}
}

// execForm is the JSON argument list of a Dockerfile instruction.
func execForm(t *testing.T, df, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `\s+(\[.*\])\s*$`).FindStringSubmatch(df)
	var args []string
	if m == nil || json.Unmarshal([]byte(m[1]), &args) != nil || len(args) == 0 {
		t.Fatalf("the Dockerfile has no %s in exec form", name)
	}
	return args
}
