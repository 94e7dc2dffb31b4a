package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/token"
)

// ErrSeveralUsers is wrapped by the error of Account.Token, Refresh and Held when the account holds
// several users' tokens and neither its LoginHint nor its Email names one of them: the account has
// no one user to serve, and the caller picks one with Account.ForUser. Test with errors.Is.
var ErrSeveralUsers = errors.New("use Account.ForUser to pick one")

// Error is a refusal or failure from the identity platform, typed so that the doctor and the proxy can
// explain it. It never holds a token, a secret or a code.
type Error struct {
	Account string
	Op      string // what was being done: "refresh", "client credentials", "device code", ...
	// From Entra's error JSON, when there was one.
	Status        int    // HTTP status
	Code          string // OAuth error: invalid_grant, invalid_client, ...
	AADSTS        int    // the AADSTS number, 0 if none
	Description   string // error_description without its Trace ID / Correlation ID / Timestamp suffix
	CorrelationID string
	TraceID       string
	SubError      string
	// Transient: a 5xx, a timeout or a network failure — worth retrying, and never a reason to drop a
	// refresh token.
	Transient bool
	// Unreachable names the identity platform's address when it could not be reached at all.
	Unreachable string
	Err         error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "account %s: %s", e.Account, e.Op)
	switch {
	case e.AADSTS != 0:
		fmt.Fprintf(&b, " refused by the identity platform: %s", e.Description)
	case e.Code != "":
		fmt.Fprintf(&b, " refused by the identity platform: %s %s", e.Code, e.Description)
	case e.Unreachable != "" && isTimeout(e.Err):
		fmt.Fprintf(&b, " failed: the identity platform at %s did not answer in time; check the network and the account's authority", e.Unreachable)
	case e.Transient && e.Unreachable == "" && errors.Is(e.Err, context.DeadlineExceeded):
		b.WriteString(" failed: the identity platform did not answer in time; try again, and if it persists check the network and the account's authority")
	case e.Unreachable != "":
		fmt.Fprintf(&b, " failed: cannot reach the identity platform at %s (%s); check the network and the account's authority", e.Unreachable, rootCause(e.Err))
	case e.Err != nil:
		fmt.Fprintf(&b, " failed: %v", e.Err)
	}
	if e.CorrelationID != "" {
		fmt.Fprintf(&b, " (correlation id %s)", e.CorrelationID)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// InvalidGrant reports whether the refresh token or code itself was refused: the user must sign in
// again. Transient failures never are.
func (e *Error) InvalidGrant() bool {
	return !e.Transient && (e.Code == "invalid_grant" || e.Code == "interaction_required")
}

// LoginRequiredError means an account holds no token for a user that can be used or refreshed
// without the user: nobody signed in, the user was removed, or the identity platform refused the
// refresh token (Err says how). The user must sign in again — with Account.Login, or for a web app
// (flow auth_code_web) with AuthCodeURL and ExchangeCode. It wraps token.ErrLoginRequired (test with
// errors.Is) and Err.
type LoginRequiredError struct {
	Account string
	// HomeAccountID is the user's (User.HomeAccountID); "" when the account holds no user at all.
	HomeAccountID string
	// Err is the identity platform's refusal (an *Error), or nil when no token was held.
	Err error
	web bool
}

// Error says what happened and how to sign in, in the package's terms.
func (e *LoginRequiredError) Error() string {
	how := "sign in with Account.Login"
	if e.web {
		how = "sign the user in with Account.AuthCodeURL and ExchangeCode"
	}
	if e.Err != nil {
		return fmt.Sprintf("%v; %v: %s again", e.Err, token.ErrLoginRequired, how)
	}
	return fmt.Sprintf("account %s: %v: no token is held; %s", e.Account, token.ErrLoginRequired, how)
}

// Unwrap returns token.ErrLoginRequired and Err.
func (e *LoginRequiredError) Unwrap() []error {
	if e.Err == nil {
		return []error{token.ErrLoginRequired}
	}
	return []error{token.ErrLoginRequired, e.Err}
}

// loginRequired says a user must sign in, wrapping the refusal that caused it, if any.
func (a *Account) loginRequired(home string, cause error) error {
	return &LoginRequiredError{Account: a.cfg.Name, HomeAccountID: home, Err: cause, web: a.cfg.Flow == config.FlowAuthCodeWeb}
}

var (
	aadstsRE = regexp.MustCompile(`^AADSTS(\d+):\s*`)
	suffixRE = regexp.MustCompile(`(?s)[\r\n ]+Trace ID:.*$`)
	bodyRE   = regexp.MustCompile(`(?s)\{.*\}`)
)

// classify turns what MSAL (or a direct HTTP call) returned into an *Error.
func classify(account, op string, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	e := &Error{Account: account, Op: op, Err: err}
	var call msalerrors.CallErr
	if errors.As(err, &call) && call.Resp != nil {
		e.Status = call.Resp.StatusCode
		var body []byte
		if call.Resp.Body != nil {
			body, _ = io.ReadAll(call.Resp.Body)
			call.Resp.Body = io.NopCloser(bytes.NewReader(body))
		}
		parseAAD(e, body)
		e.Transient = e.Status >= 500 || e.Status == 429 || e.Code == "temporarily_unavailable"
		return e
	}
	// MSAL sometimes reports the body only in the message (device-code polling errors).
	if m := bodyRE.FindString(err.Error()); m != "" {
		parseAAD(e, []byte(m))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			e.Unreachable = u.Scheme + "://" + u.Host
		}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "server response error") {
		e.Transient = e.Code == ""
	}
	return e
}

// isTimeout reports whether err is a timeout: the server was reached but did not answer in time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// rootCause is the innermost error's text: "connection refused", "no such host", "i/o timeout".
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			msg := err.Error()
			if i := strings.LastIndex(msg, ": "); i >= 0 {
				msg = msg[i+2:]
			}
			return msg
		}
		err = next
	}
}

func parseAAD(e *Error, body []byte) {
	var j struct {
		Error         string `json:"error"`
		Description   string `json:"error_description"`
		Codes         []int  `json:"error_codes"`
		CorrelationID string `json:"correlation_id"`
		TraceID       string `json:"trace_id"`
		SubError      string `json:"suberror"`
	}
	if json.Unmarshal(body, &j) != nil || j.Error == "" {
		return
	}
	e.Code, e.CorrelationID, e.TraceID, e.SubError = j.Error, j.CorrelationID, j.TraceID, j.SubError
	e.Description = strings.TrimSpace(suffixRE.ReplaceAllString(j.Description, ""))
	if len(j.Codes) > 0 {
		e.AADSTS = j.Codes[0]
	} else if m := aadstsRE.FindStringSubmatch(e.Description); m != nil {
		e.AADSTS, _ = strconv.Atoi(m[1])
	}
}
