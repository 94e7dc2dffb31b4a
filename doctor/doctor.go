// Package doctor walks the chain an account's mail depends on and stops at the first broken link,
// naming it and the one fix that is needed:
//
//	config → token store → tenant discovery → token → the token's claims vs the protocol → resolve →
//	connect → TLS → capabilities → authenticate → the first mailbox command
//
// The first three links are shared by every protocol; from the token on, each protocol (IMAP, POP3,
// SMTP, Graph) walks its own chain, and one protocol's broken link does not stop another's. The
// connection links are package check's (check.Connect): the doctor is the same client, not a second
// one. Findings come from the one catalogue, package doctor/catalog, which check, the mail commands
// and the proxy use too (catalog.Finding), and ExplainRefusal gives the
// catalogue's answer for one refusal (what the proxy logs, through catalog.Refusal directly).
//
// Where Exchange's answer fits several causes (an app-only token accepted by IMAP and then refused
// the mailbox: no FullAccess, or IMAP disabled), the doctor tries another protocol the app holds a
// role for on the same mailbox and narrows the finding (catalog.Probed).
//
// Nothing here prints a token, a secret or a password: secrets are read only to tell whether they
// are there and load, and named by where they are kept.
package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/check"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor/catalog"
	"github.com/mailoauth/mailoauth/trace"
)

// ExplainRefusal explains a mail server's refusal of an authentication (or of the first command
// after it) for an account: said is the server's words ("NO AUTHENTICATE failed.", "535 5.7.139
// ...", "-ERR Authentication failure: ...", "User is authenticated but not connected."), accessToken
// the token that was sent — only its claims are read, without verification, and it is never
// printed. protocol is "imap", "pop" or "smtp".
func ExplainRefusal(a *auth.Account, protocol string, said string, accessToken string) catalog.Finding {
	c, _ := catalog.ParseClaims(accessToken)
	return catalog.Refusal(catalog.For(a), protocol, said, c, time.Now())
}

// SharedMailboxSyntax recognises a user name written in basic authentication's user\shared form,
// which OAuth refuses (for the proxy, which sees the names legacy programs send).
func SharedMailboxSyntax(user string) (catalog.Finding, bool) {
	return catalog.SharedMailboxSyntax(user)
}

// Options tune a run.
type Options struct {
	// Protocols to walk; empty: the account's protocols. check.Protocols() is all of them.
	Protocols []string
	// Now is this machine's clock (the clock-skew and certificate checks); nil is time.Now.
	Now func() time.Time
}

// Report is a whole run. Its JSON is documented in docs/doctor.md and stable.
type Report struct {
	Account string `json:"account"`
	OK      bool   `json:"ok"`
	// Steps are the links shared by every protocol: config, store, discovery.
	Steps []trace.Step `json:"steps"`
	// Finding is set when a shared link broke; no protocol was tried then.
	Finding   *catalog.Finding  `json:"finding,omitempty"`
	Notes     []catalog.Finding `json:"notes,omitempty"`
	Protocols []ProtocolReport  `json:"protocols"`
}

// ProtocolReport is one protocol's chain, from the token on.
type ProtocolReport struct {
	Protocol string            `json:"protocol"`
	Server   string            `json:"server"`
	OK       bool              `json:"ok"`
	Steps    []trace.Step      `json:"steps"`
	Said     string            `json:"server_said,omitempty"`
	Finding  *catalog.Finding  `json:"finding,omitempty"`
	Notes    []catalog.Finding `json:"notes,omitempty"`
}

// Findings are the report's distinct findings, the shared link's first: a wrong client secret breaks
// every protocol's token link, and is one finding.
func (r Report) Findings() []catalog.Finding {
	var out []catalog.Finding
	add := func(f *catalog.Finding) {
		if f != nil && !slices.Contains(out, *f) {
			out = append(out, *f)
		}
	}
	add(r.Finding)
	for _, p := range r.Protocols {
		add(p.Finding)
	}
	return out
}

// Run walks the chain for the account name of cfg, whose accounts m builds. The error is for an
// account cfg does not have; every problem found on the way is a finding in the report.
func Run(ctx context.Context, cfg *config.File, m *auth.Manager, name string, o Options) (Report, error) {
	acc, err := cfg.Account(name)
	if err != nil {
		return Report{}, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	protocols := o.Protocols
	if len(protocols) == 0 {
		protocols = acc.Protocols
	}
	if len(protocols) == 0 {
		protocols = config.DefaultProtocols()
	}
	rep := Report{Account: name}
	var rec trace.Recorder
	t := rec.Func()
	fail := func(f *catalog.Finding) (Report, error) {
		rep.Steps, rep.Finding = rec.Steps, f
		return rep, nil
	}

	// Link 1: the configuration, before anything is built from it.
	s := catalog.ForConfig(acc)
	var a *auth.Account
	var f *catalog.Finding
	_ = t.Do("config", func() (string, error) {
		var notes []catalog.Finding
		if f, notes = checkConfig(acc, s, protocols, o.Now()); f != nil {
			return "", errors.New(f.Cause)
		}
		rep.Notes = append(rep.Notes, notes...)
		if a, err = m.Account(name); err != nil {
			f = &catalog.Finding{Code: catalog.CodeConfigAccount, Step: "config", Cause: err.Error(), Fix: "correct the account's configuration (docs/config.md)"}
			return "", err
		}
		return configSummary(acc, s), nil
	})
	if f != nil {
		return fail(f)
	}
	s = catalog.For(a)

	// Link 2: the token store opens. A passphrase that does not open it is found here, once, rather
	// than as every protocol's token link failing.
	_ = t.Do("store", func() (string, error) {
		h, err := a.Held(ctx)
		if sf, ok := catalog.Store(err); ok {
			f = &sf
			return "", err
		}
		return heldSummary(h, err), nil
	})
	if f != nil {
		return fail(f)
	}

	// Link 3: the tenant, as the identity platform knows it.
	var tid string
	_ = t.Do("discovery", func() (string, error) {
		var detail string
		tid, detail, f = discover(ctx, a, s)
		if f != nil {
			return "", errors.New(f.Cause)
		}
		return detail, nil
	})
	if f != nil {
		return fail(f)
	}
	rep.Steps, rep.OK = rec.Steps, true
	for _, p := range protocols {
		pr := walk(ctx, a, s, p, tid, o.Now)
		rep.OK = rep.OK && pr.OK
		rep.Protocols = append(rep.Protocols, pr)
	}
	return rep, nil
}

// heldSummary is the store link's detail: what the store holds for the account. An error that is not
// the store's (several users' tokens, say) is the token link's to explain.
func heldSummary(h auth.Held, err error) string {
	switch {
	case err != nil:
		return "opens"
	case h.RefreshToken:
		return fmt.Sprintf("opens; holds a refresh token and %d access tokens", len(h.AccessTokens))
	case len(h.AccessTokens) > 0:
		return fmt.Sprintf("opens; holds %d access tokens", len(h.AccessTokens))
	}
	return "opens; holds no token for the account"
}

// walkTimeout bounds one protocol's chain, as check's does.
const walkTimeout = 2 * time.Minute

// walk is one protocol's chain: token, claims, then check's connection steps.
func walk(ctx context.Context, a *auth.Account, s catalog.Subject, protocol, tid string, now func() time.Time) (pr ProtocolReport) {
	ctx, cancel := context.WithTimeout(ctx, walkTimeout)
	defer cancel()
	pr = ProtocolReport{Protocol: protocol, Server: a.Server(protocol)}
	var rec trace.Recorder
	t := rec.Func()
	defer func() { pr.Steps, pr.OK = rec.Steps, pr.Finding == nil }()

	resource := token.Exchange
	if protocol == config.ProtocolGraph {
		resource = token.Graph
	}
	var tok *token.Token
	if err := t.Do("token", func() (string, error) {
		var err error
		tok, err = a.Token(ctx, resource)
		if err != nil {
			return "", err
		}
		return string(resource) + " token, expires " + tok.ExpiresOn.UTC().Format(time.RFC3339), nil
	}); err != nil {
		f, ok := catalog.TokenError(s, err)
		if !ok {
			f = unexplained("token", err)
		}
		pr.Finding = &f
		return pr
	}

	claims, _ := catalog.ParseClaims(tok.AccessToken)
	_ = t.Do("claims", func() (string, error) {
		problem, notes := catalog.CheckClaims(s, protocol, claims, tid)
		if problem == nil {
			problem = catalog.ClockSkew(claims, now())
		}
		pr.Notes = append(pr.Notes, notes...)
		if problem != nil {
			pr.Finding = problem
			return "", errors.New(problem.Cause)
		}
		if claims == nil {
			return "not a JWT: the server will judge it", nil
		}
		return claims.Summary(now()) + "; fits " + protocolLabel(protocol), nil
	})
	if pr.Finding != nil {
		return pr
	}

	err := check.Connect(ctx, a, protocol, t)
	if err == nil {
		return pr
	}
	pr.Said = catalog.ServerSaid(err)
	f, ok := catalog.Explain(s, catalog.Failure{Protocol: protocol, Addr: pr.Server, Claims: claims, Err: err, Now: now()})
	if !ok {
		f = unexplained(lastStep(rec.Steps), err)
	}
	if f.Code == catalog.CodeTimeout {
		// The catalogue cannot tell which link waited in vain (connect, tls, greeting, ...); the trace can.
		f.Step = lastStep(rec.Steps)
	}
	if f.Code == catalog.CodeNotConnected || f.Code == catalog.CodeAppExchange {
		f = probe(ctx, a, s, protocol, claims, f, t)
	}
	if f.Step == "" {
		f.Step = lastStep(rec.Steps)
	}
	pr.Finding = &f
	return pr
}

// probe narrows an uncertain app-only finding by trying another protocol the token's app holds a role
// for, on the same mailbox (catalog.Probed says what each outcome means). The probe is a step of its
// own ("probe smtp", ...), its inner steps not recorded.
func probe(ctx context.Context, a *auth.Account, s catalog.Subject, protocol string, c *catalog.Claims, f catalog.Finding, t trace.Func) catalog.Finding {
	if c == nil || !c.AppOnly {
		return f
	}
	var candidates []string
	if protocol == config.ProtocolIMAP {
		candidates = []string{config.ProtocolSMTP, config.ProtocolPOP}
	} else {
		candidates = []string{config.ProtocolIMAP}
	}
	for _, other := range candidates {
		if !c.HasRole(catalog.NeededPermission(other, true)) {
			continue
		}
		outcome := catalog.ProbeInconclusive
		_ = t.Do("probe "+other, func() (string, error) {
			err := check.Connect(ctx, a, other, nil)
			said := catalog.ServerSaid(err)
			switch {
			case err == nil:
				outcome = catalog.ProbeOpened
				return protocolLabel(other) + " opens " + a.Mailbox() + " with the same app", nil
			case strings.Contains(strings.ToLower(said), "not connected"):
				outcome = catalog.ProbeDeferred
			case catalog.AuthRefused(err) && !strings.Contains(strings.ToLower(said), "smtpclientauthentication"):
				outcome = catalog.ProbeRefused
			}
			return protocolLabel(other) + " answered: " + firstNonEmpty(said, err.Error()), nil
		})
		return catalog.Probed(s, f, catalog.Probe{Protocol: protocol, Other: other, Outcome: outcome, Claims: c})
	}
	return f
}

func unexplained(step string, err error) catalog.Finding {
	return catalog.Finding{Code: catalog.CodeUnexplained, Step: step, Cause: err.Error(),
		Fix: "the catalogue has no advice for this; the step's error above is the server's or the system's own words"}
}

func lastStep(steps []trace.Step) string {
	if len(steps) == 0 {
		return ""
	}
	return steps[len(steps)-1].Name
}

func protocolLabel(p string) string {
	if p == config.ProtocolGraph {
		return "Graph"
	}
	return strings.ToUpper(p)
}

func configSummary(acc *config.Account, s catalog.Subject) string {
	parts := []string{"flow " + acc.Flow, "client id " + acc.ClientID, "tenant " + firstNonEmpty(acc.Tenant, config.TenantOrganizations)}
	if s.Mailbox != "" {
		parts = append(parts, "mailbox "+s.Mailbox)
	}
	if s.SecretSource != "" {
		parts = append(parts, strings.Fields(s.SecretSource)[0]+" loads")
	}
	return strings.Join(parts, ", ")
}

// discoveryTimeout bounds the discovery request.
const discoveryTimeout = 30 * time.Second

var tenantInIssuer = regexp.MustCompile(`(?i)/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/`)

// discover fetches the tenant's OpenID configuration (DocDiscovery): an unknown tenant is AADSTS90002
// here, before any credential is sent. It returns the tenant id from the issuer ("" for
// organizations/common).
func discover(ctx context.Context, a *auth.Account, s catalog.Subject) (tid, detail string, f *catalog.Finding) {
	tenant := firstNonEmpty(a.Config().Tenant, config.TenantOrganizations)
	u := s.Authority + "/" + url.PathEscape(tenant) + "/v2.0/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: a.TLSConfig(), Proxy: http.ProxyFromEnvironment}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", "", &catalog.Finding{Code: catalog.CodeConfigAccount, Step: "discovery", Cause: "the authority " + s.Authority + " does not make a URL: " + err.Error(), Fix: "correct authority or cloud"}
	}
	resp, err := hc.Do(req)
	if f := catalog.ClockFromTLS(err); f != nil {
		f.Step = "discovery"
		return "", "", f
	}
	if err != nil {
		return "", "", &catalog.Finding{Code: catalog.CodeIdPUnreachable, Step: "discovery", Cause: "the identity platform at " + s.Authority + " cannot be reached: " + err.Error(),
			Fix: "check the network, a proxy or firewall, and the account's authority and cloud", Docs: catalog.DocDiscovery}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var doc struct {
		Issuer      string `json:"issuer"`
		Description string `json:"error_description"`
		Codes       []int  `json:"error_codes"`
	}
	_ = json.Unmarshal(body, &doc)
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return "", "", &catalog.Finding{Code: catalog.CodeIdPTransient, Step: "discovery", Cause: fmt.Sprintf("the identity platform answered HTTP %d", resp.StatusCode),
			Fix: "try again later", Docs: catalog.DocDiscovery}
	case len(doc.Codes) > 0:
		desc := doc.Description
		if i := strings.Index(desc, "\r\n"); i >= 0 {
			desc = desc[:i]
		}
		fd := catalog.AADSTS(s, doc.Codes[0], desc)
		fd.Step = "discovery"
		return "", "", &fd
	case resp.StatusCode != http.StatusOK || doc.Issuer == "":
		return "", "", &catalog.Finding{Code: catalog.CodeIdPUnreachable, Step: "discovery", Cause: fmt.Sprintf("%s answered HTTP %d without an OpenID configuration", s.Authority, resp.StatusCode),
			Fix: "check authority (it is the identity platform's base URL, without the tenant) and cloud", Docs: catalog.DocDiscovery}
	}
	if m := tenantInIssuer.FindStringSubmatch(doc.Issuer + "/"); m != nil {
		tid = m[1]
	}
	detail = "tenant " + tenant
	if tid != "" {
		detail += " is " + tid
	}
	return tid, detail + " (issuer " + doc.Issuer + ")", nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
