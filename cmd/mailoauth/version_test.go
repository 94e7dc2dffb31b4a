package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionOfABuiltBinary builds mailoauth as a release would (the version set with -ldflags, the
// commit stamped by the Go toolchain) and reads its version both ways, as text and as JSON.
func TestVersionOfABuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	head, gitErr := exec.Command("git", "rev-parse", "HEAD").Output()
	vcs := "-buildvcs=true" // the environment may say -buildvcs=false in GOFLAGS
	if gitErr != nil {
		vcs = "-buildvcs=false" // not a git checkout: nothing to stamp
	}
	bin := filepath.Join(t.TempDir(), "mailoauth")
	build := exec.Command("go", "build", vcs, "-ldflags", "-X main.version=v9.8.7", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		text := string(out)
		if !strings.HasPrefix(text, "mailoauth v9.8.7\n") || !strings.Contains(text, "\ngo      "+runtime.Version()+"\n") {
			t.Errorf("%v printed:\n%s", args, text)
		}
		if gitErr == nil && !strings.Contains(text, "\ncommit  "+strings.TrimSpace(string(head))) {
			t.Errorf("%v does not name the commit %s:\n%s", args, head, text)
		}
	}

	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, out)
	}
	if v["version"] != "v9.8.7" || v["go"] != runtime.Version() {
		t.Errorf("version --json: %s", out)
	}
	if gitErr == nil && (v["commit"] != strings.TrimSpace(string(head)) || v["date"] == "" || v["modified"] == nil) {
		t.Errorf("version --json lacks the commit, its date or whether the tree was modified: %s", out)
	}
}

// TestVersionFromBuildInfo: a build from a clone says (devel), `go install ...@v1.2.3` gives the
// module version, a release's -X main.version wins, and a tree with changes says so.
func TestVersionFromBuildInfo(t *testing.T) {
	if v := buildVersion(nil, false, ""); v.Version != "(devel)" || v.Go != runtime.Version() || v.Commit != "" {
		t.Errorf("no build info: %+v", v)
	}
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-06T09:19:02Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	want := versionInfo{Version: "v1.2.3", Commit: "0123abcd", Date: "2026-12-06T09:19:02Z", Modified: true, Go: "go1.99"}
	if v := buildVersion(bi, true, ""); v != want {
		t.Errorf("got %+v, want %+v", v, want)
	}
	want.Version = "v2.0.0"
	if v := buildVersion(bi, true, "v2.0.0"); v != want {
		t.Errorf("with -X main.version: got %+v, want %+v", v, want)
	}
	bi.Main.Version = "(devel)"
	if v := buildVersion(bi, true, ""); v.Version != "(devel)" {
		t.Errorf("a build from a clone: %+v", v)
	}
}

// TestVersionInProcess: `--version` prints the version instead of the help, and goes with --json.
func TestVersionInProcess(t *testing.T) {
	code, out, errs := runCLI(t, context.Background(), "--version")
	if code != exitOK || !strings.HasPrefix(out, "mailoauth ") || !strings.Contains(out, "\ngo      ") || errs != "" {
		t.Errorf("--version: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runCLI(t, context.Background(), "--version", "--json")
	var v versionInfo
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v.Version == "" || v.Go != runtime.Version() {
		t.Errorf("--version --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, _ := runCLI(t, context.Background(), "version", "extra"); code != exitUsage {
		t.Errorf("version extra: exit %d, want %d", code, exitUsage)
	}
}
