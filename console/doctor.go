package console

import (
	"context"
	"net/http"
	"time"

	"github.com/mailoauth/mailoauth/doctor"
)

// doctorTimeout bounds one doctor run from the console: every link has its own shorter deadline.
const doctorTimeout = 3 * time.Minute

// runDoctor walks one account's chain and renders it; its first finding becomes the account's
// last error (none: the account is fine).
func (c *Console) runDoctor(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	if c.opts.Config.Accounts[name] == nil {
		c.fail(w, r, http.StatusNotFound, "No account "+name+" in the configuration.")
		return
	}
	if !c.startDoctor(name) {
		w.Header().Set("Retry-After", "10")
		c.fail(w, r, http.StatusTooManyRequests, "The doctor is already running for "+name+", or for too many accounts at once: wait for its result and try again.")
		return
	}
	defer c.endDoctor(name)
	ctx, cancel := context.WithTimeout(r.Context(), doctorTimeout)
	defer cancel()
	rep, err := doctor.Run(ctx, c.opts.Config, c.opts.Manager, name, doctor.Options{})
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "The doctor could not run for "+name+": "+err.Error())
		return
	}
	codes := []string{}
	for _, f := range rep.Findings() {
		codes = append(codes, f.Code)
	}
	if fs := rep.Findings(); len(fs) > 0 {
		c.setLastErr(name, &fs[0])
	} else {
		c.setLastErr(name, nil)
	}
	c.log.Info("console doctor run", "account", name, "ok", rep.OK, "findings", codes, "source", source(r))
	c.render(w, http.StatusOK, "doctor", s, map[string]any{"Report": rep})
}

// maxDoctors bounds the doctor runs under way at once, over all accounts: each holds connections to
// the identity platform and the mail servers for up to doctorTimeout.
const maxDoctors = 4

// startDoctor claims a doctor run for account: false when one runs for it already, or maxDoctors
// run.
func (c *Console) startDoctor(account string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doctoring[account] || len(c.doctoring) >= maxDoctors {
		return false
	}
	c.doctoring[account] = true
	return true
}

func (c *Console) endDoctor(account string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.doctoring, account)
}
