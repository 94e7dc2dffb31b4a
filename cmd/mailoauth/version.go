package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the release's version, set by the release build with
// -ldflags "-X main.version=v1.2.3"; empty, the build info's module version is shown.
var version string

// versionInfo is what `mailoauth version` says about this binary; its --json form is stable.
type versionInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Date     string `json:"date"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
}

// buildVersion reads what the Go toolchain stamped into the binary: the module version ("(devel)"
// for a build from a clone), and the commit, its time and whether the tree had changes when `go
// build` ran in a git checkout. override, when set, is the release's version.
func buildVersion(bi *debug.BuildInfo, ok bool, override string) versionInfo {
	v := versionInfo{Version: "(devel)", Go: runtime.Version()}
	if ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			v.Go = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.Date = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if override != "" {
		v.Version = override
	}
	return v
}

// printVersion writes the version as text, or as JSON with --json.
func (a *app) printVersion() error {
	v := buildVersion(debugBuildInfo())
	if a.jsonOut {
		return json.NewEncoder(a.stdout).Encode(v)
	}
	commit := v.Commit
	switch {
	case commit == "":
		commit = "unknown"
	case v.Modified:
		commit += " (with uncommitted changes)"
	}
	date := v.Date
	if date == "" {
		date = "unknown"
	}
	_, err := fmt.Fprintf(a.stdout, "mailoauth %s\ncommit  %s\ndate    %s\ngo      %s\n", v.Version, commit, date, v.Go)
	return err
}

// debugBuildInfo is debug.ReadBuildInfo with the release override, for buildVersion.
func debugBuildInfo() (*debug.BuildInfo, bool, string) {
	bi, ok := debug.ReadBuildInfo()
	return bi, ok, version
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Long: `Print this binary's version, the commit it was built from, that commit's date and the Go
version, as stamped by the Go toolchain (the same as mailoauth --version). A build from a clone says
(devel). --json prints {"version", "commit", "date", "modified", "go"}.`,
		Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error { return a.printVersion() },
	}
}
