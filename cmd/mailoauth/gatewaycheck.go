package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor/catalog"
	"github.com/mailoauth/mailoauth/token"
)

// graphProtocols returns the protocols of the proxy's listeners with via = "graph", sorted.
func graphProtocols(p *config.Proxy) []string {
	var out []string
	for _, l := range p.Listeners {
		if l.Via == config.ViaGraph && !slices.Contains(out, l.Protocol) {
			out = append(out, l.Protocol)
		}
	}
	slices.Sort(out)
	return out
}

// gatewayPermissions are the Graph permissions the gateway needs for protocols: Mail.ReadWrite to
// read, flag, move and delete (IMAP, POP3), Mail.Send to submit (SMTP).
func gatewayPermissions(protocols []string) []string {
	var out []string
	if slices.Contains(protocols, config.ProtocolIMAP) || slices.Contains(protocols, config.ProtocolPOP) {
		out = append(out, "Mail.ReadWrite")
	}
	if slices.Contains(protocols, config.ProtocolSMTP) {
		out = append(out, "Mail.Send")
	}
	return out
}

// checkGatewayAccounts is proxy --check's part for listeners via Graph: each account the proxy's
// users and domains map to gets a Graph token, whose claims must carry what those listeners need
// (roles for an app-only token, scp for a delegated one). It prints one line per account and fails
// (exit 1) if any account falls short, with the doctor's finding and fix.
func (a *app) checkGatewayAccounts(ctx context.Context, p *config.Proxy, mgr *auth.Manager) error {
	protocols := graphProtocols(p)
	if len(protocols) == 0 {
		return nil
	}
	need := gatewayPermissions(protocols)
	var names []string
	for _, u := range p.Users {
		names = append(names, u.Account)
	}
	for _, d := range p.Domains {
		names = append(names, d.Account)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var failed []string
	for _, name := range names {
		acc, err := mgr.Account(name)
		if err != nil {
			return err // the configuration was checked: not reached
		}
		if f := gatewayFinding(ctx, acc, need); f != nil {
			fmt.Fprintf(a.stdout, "✗ account %s via Graph (%s): %s (%s)\n  fix: %s\n", name, strings.Join(protocols, ", "), f.Cause, f.Code, f.Fix)
			failed = append(failed, name)
			continue
		}
		fmt.Fprintf(a.stdout, "✓ account %s via Graph (%s): the token has %s\n", name, strings.Join(protocols, ", "), strings.Join(need, " and "))
	}
	if len(failed) > 0 {
		return fmt.Errorf("the Graph gateway cannot serve account(s) %s; see the fixes above", strings.Join(failed, ", "))
	}
	return nil
}

// gatewayFinding gets acc's Graph token and says what it lacks of need, nil when nothing.
func gatewayFinding(ctx context.Context, acc *auth.Account, need []string) *catalog.Finding {
	s := catalog.For(acc)
	tok, err := acc.Token(ctx, token.Graph)
	if err != nil {
		if f, ok := catalog.TokenError(s, err); ok {
			return &f
		}
		return &catalog.Finding{Code: catalog.CodeGraphToken, Cause: "no Graph token: " + err.Error(), Fix: "run mailoauth doctor " + acc.Name()}
	}
	c, err := catalog.ParseClaims(tok.AccessToken)
	if err != nil {
		return nil // not a JWT (a personal account's): Graph itself will say, at the first login
	}
	for _, perm := range need {
		if c.AppOnly && !c.HasRole(perm) {
			return missingRole(s, perm)
		}
		if !c.AppOnly && !c.HasScope(perm) && !c.HasScope(perm+".Shared") {
			return missingScope(s, c, perm)
		}
	}
	return nil
}

func missingRole(s catalog.Subject, perm string) *catalog.Finding {
	code := catalog.CodeGraphRole
	if perm == "Mail.Send" {
		code = catalog.CodeGraphSend
	}
	return &catalog.Finding{Code: code, Step: "claims", Cause: "the app-only Graph token has no " + perm + " role, which the gateway needs",
		Fix:  s.PortalApp() + " > API permissions > Add > Microsoft Graph > Application permissions > " + perm + "; then grant admin consent: " + s.AdminConsentURL(),
		Docs: catalog.DocGraphPermissions}
}

func missingScope(s catalog.Subject, c *catalog.Claims, perm string) *catalog.Finding {
	code := catalog.CodeGraphScope
	if perm == "Mail.Send" {
		code = catalog.CodeGraphSend
	}
	return &catalog.Finding{Code: code, Step: "claims", Cause: "the delegated Graph token's scp (" + strings.Join(c.Scopes, " ") + ") lacks " + perm + ", which the gateway needs",
		Fix:  s.PortalApp() + " > API permissions > Add > Microsoft Graph > Delegated > " + perm + " (and grant consent if the tenant requires an administrator's), then mailoauth login " + s.Account,
		Docs: catalog.DocGraphPermissions}
}
