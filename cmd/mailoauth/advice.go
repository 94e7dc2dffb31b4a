package main

import (
	"regexp"
	"strings"

	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/doctor"
	"github.com/mailoauth/mailoauth/doctor/catalog"
)

// Suggested commands. Every `mailoauth ...` the CLI tells a user to run goes through suggest (its own
// advice) or advise (the library's fixes, which name commands bare because the library knows nothing
// of this CLI's flags). When the user gave --config FILE, the suggestion repeats it, so that pasting
// it reads the same file. When the file came from $MAILOAUTH_CONFIG or the default location, the
// suggestion stays bare: it reads the same file in the same shell.

// noConfig are the subcommands that read no configuration: a suggestion of one of them stays as
// written. Every other subcommand (login, token, doctor, proxy, ...) gets the user's --config.
var noConfig = map[string]bool{"emulator": true, "demo": true, "version": true, "completion": true, "help": true, "man": true, "hash-password": true}

// suggestedCommand finds "mailoauth WORD" (and the word after it) in library text.
var suggestedCommand = regexp.MustCompile(`\bmailoauth ([a-z][a-z-]*)( [a-z][a-z-]*)?`)

// invocation is how a suggested command starts: the program and, when given, --config FILE.
func (a *app) invocation() string {
	if a.configPath == "" {
		return "mailoauth"
	}
	return "mailoauth --config " + shellQuote(a.configPath)
}

// suggest renders a command for the user to run, e.g. suggest("login", "alice").
func (a *app) suggest(args ...string) string {
	q := make([]string, len(args))
	for i, s := range args {
		q[i] = shellQuote(s)
	}
	return a.invocation() + " " + strings.Join(q, " ")
}

// advise rewrites the commands named in library text (a finding's fix, an error) as suggest would
// render them.
func (a *app) advise(text string) string {
	if a.configPath == "" {
		return text
	}
	return suggestedCommand.ReplaceAllStringFunc(text, func(m string) string {
		words := strings.Fields(m)[1:]
		sub, _, _ := a.root.Find(words)
		if sub == nil || sub == a.root || noConfig[sub.Name()] || sub.IsAdditionalHelpTopicCommand() {
			return m // not a command ("mailoauth already retried"), or one without configuration
		}
		return a.invocation() + strings.TrimPrefix(m, "mailoauth")
	})
}

// adviseFinding rewrites the fix of a finding in place.
func (a *app) adviseFinding(f *catalog.Finding) {
	if f != nil {
		f.Fix = a.advise(f.Fix)
	}
}

func (a *app) adviseFindings(fs []catalog.Finding) {
	for i := range fs {
		a.adviseFinding(&fs[i])
	}
}

// adviseDoctor rewrites every fix of a doctor report, for its text and its JSON alike.
func (a *app) adviseDoctor(rep *doctor.Report) {
	a.adviseFinding(rep.Finding)
	a.adviseFindings(rep.Notes)
	for i := range rep.Protocols {
		a.adviseFinding(rep.Protocols[i].Finding)
		a.adviseFindings(rep.Protocols[i].Notes)
	}
}

// adviseCheck rewrites the likely causes of a check report.
func (a *app) adviseCheck(rep *check.Report) {
	for i := range rep.Results {
		r := &rep.Results[i]
		r.Cause = a.advise(r.Cause)
		a.adviseFinding(r.Finding)
	}
}

// adviseSetup rewrites the commands and details of a setup checklist.
func (a *app) adviseSetup(cl *doctor.Checklist) {
	for i := range cl.Steps {
		it := &cl.Steps[i]
		for j := range it.Details {
			it.Details[j] = a.advise(it.Details[j])
		}
		for j := range it.Commands {
			it.Commands[j] = a.advise(it.Commands[j])
		}
	}
}

// shellQuote quotes s for a POSIX shell when it holds anything but plainly safe characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@%+=,-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
