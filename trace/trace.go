// Package trace records the steps of a mail connection — resolve, connect, TLS, capabilities,
// authentication, the first mailbox command — with their durations and outcomes. The imap, pop3 and
// smtp clients report into the Func their Options.Trace holds (a Recorder's, or a program's own), so
// that a failed connection shows the step it failed at; `mailoauth check` and the doctor print it. It holds no
// protocol logic and must never record a token or a password (details are server replies and
// summaries).
package trace

import (
	"time"
)

// Step is one step of a connection.
type Step struct {
	Name     string        `json:"step"`
	Duration time.Duration `json:"duration_ns"`
	OK       bool          `json:"ok"`
	Detail   string        `json:"detail,omitempty"` // what was found: "TLS 1.3", "AUTH=XOAUTH2 offered"
	Error    string        `json:"error,omitempty"`  // on failure: the server's exact words where there were any
}

// Func receives steps as they finish; nil discards them.
type Func func(Step)

// Do runs one step, timing it, and reports it. f returns a detail for the record.
func (t Func) Do(name string, f func() (detail string, err error)) error {
	start := time.Now()
	detail, err := f()
	if t != nil {
		s := Step{Name: name, Duration: time.Since(start), OK: err == nil, Detail: detail}
		if err != nil {
			s.Error = err.Error()
		}
		t(s)
	}
	return err
}

// Recorder collects steps.
type Recorder struct{ Steps []Step }

// Func returns a Func that appends to the recorder.
func (r *Recorder) Func() Func { return func(s Step) { r.Steps = append(r.Steps, s) } }

// AuthDetail is what an authenticate step records: the mechanism, the user, and whether it took a
// fresh token after the server refused the cached one.
func AuthDetail(mech, user string, retried bool) string {
	d := mech + " as " + user
	if retried {
		d += " (with a fresh token after the server refused the cached one)"
	}
	return d
}
