package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestReleaseScript runs scripts/release for this machine's target into a temporary directory, as
// a release would, and checks what a user downloading it would: SHA256SUMS verifies the archive, the
// archive holds the binary, the README and the man pages, the binary is static, and its version is
// the one stamped (git describe), with the commit it names.
func TestReleaseScript(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds a release")
	}
	if out, err := exec.Command("git", "rev-parse", "--git-dir").CombinedOutput(); err != nil {
		t.Fatalf("scripts/release needs a git checkout (it stamps git describe): %v %s", err, out)
	}
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Until(d)/10)) // leave a tenth for the report
		defer cancel()
	}
	dir := t.TempDir()
	target := runtime.GOOS + "/" + runtime.GOARCH
	cmd := exec.CommandContext(ctx, "bash", "../../scripts/release")
	cmd.Env = append(os.Environ(), "RELEASE_TARGETS="+target, "RELEASE_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release: %v\n%s", err, out)
	}

	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
	if len(lines) != 1 {
		t.Fatalf("SHA256SUMS for one target has %d lines:\n%s", len(lines), sums)
	}
	sum, archive, ok := strings.Cut(lines[0], "  ")
	if !ok {
		t.Fatalf("SHA256SUMS is not in sha256sum's format: %q", lines[0])
	}
	b, err := os.ReadFile(filepath.Join(dir, archive))
	if err != nil {
		t.Fatal(err)
	}
	if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum {
		t.Fatalf("SHA256SUMS says %s for %s, the file's is %x", sum, archive, h)
	}
	// mailoauth_VERSION_GOOS_GOARCH.tar.gz
	suffix := "_" + runtime.GOOS + "_" + runtime.GOARCH + ".tar.gz"
	version := strings.TrimSuffix(strings.TrimPrefix(archive, "mailoauth_"), suffix)
	if !strings.HasPrefix(archive, "mailoauth_") || !strings.HasSuffix(archive, suffix) || version == "" {
		t.Fatalf("archive %s is not named mailoauth_VERSION%s", archive, suffix)
	}

	files := untar(t, filepath.Join(dir, archive), t.TempDir())
	top := strings.TrimSuffix(archive, ".tar.gz") + "/"
	for _, f := range []string{"mailoauth", "README.md", "man/man1/mailoauth.1", "man/man1/mailoauth-login.1", "man/man1/mailoauth-exit-codes.1"} {
		if files[top+f] == "" {
			t.Errorf("the archive lacks %s%s", top, f)
		}
	}
	bin := files[top+"mailoauth"]
	if bin == "" {
		t.FailNow()
	}
	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("the binary asks for a dynamic loader: not static (CGO_ENABLED=0)")
			}
		}
		f.Close()
	}

	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatalf("version --json: %v", err)
	}
	var v versionInfo
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	// git describe --tags --always --dirty: TAG-N-gHASH, or HASH, then -dirty when modified.
	described := strings.TrimSuffix(version, "-dirty")
	hash := described[strings.LastIndex(described, "-g")+len("-g"):]
	if !strings.Contains(described, "-g") {
		hash = described
	}
	if v.Version != version || len(hash) < 7 || !strings.HasPrefix(v.Commit, hash) || v.Date == "" {
		t.Errorf("the release binary says version %q, commit %q, date %q; want version %q (as stamped) and the commit %s it names", v.Version, v.Commit, v.Date, version, hash)
	}
	if err := exec.Command("git", "cat-file", "-e", v.Commit+"^{commit}").Run(); err != nil {
		t.Errorf("the stamped commit %s is not a commit of this repository: %v", v.Commit, err)
	}
}

// untar extracts a .tar.gz into dir and returns the path of each regular file by its name in the
// archive.
func untar(t *testing.T, archive, dir string) map[string]string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: owner %d:%d (want root, for reproducible archives)", h.Name, h.Uid, h.Gid)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("archive entry %s leaves the directory", h.Name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode)&0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		files[h.Name] = p
	}
}
