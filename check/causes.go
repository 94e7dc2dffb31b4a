package check

import (
	"context"

	"github.com/mailoauth/mailoauth/token"

	"github.com/mailoauth/mailoauth/auth"
	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor/catalog"
)

// Explain returns the finding of the catalogue (package doctor/catalog) for a failure of a protocol
// operation of an account — an IMAP, POP3, SMTP or Graph error from any command, not only from check
// — and false when the catalogue knows nothing useful about it. It reads the claims of the account's
// cached token; it never prints the token.
func Explain(ctx context.Context, a *auth.Account, protocol string, err error) (catalog.Finding, bool) {
	var claims *catalog.Claims
	if tok, terr := a.Token(ctx, resourceOf(protocol)); terr == nil {
		claims, _ = catalog.ParseClaims(tok.AccessToken)
	}
	return catalog.Explain(catalog.For(a), catalog.Failure{Protocol: protocol, Addr: a.Server(protocol), Claims: claims, Err: err})
}

// resourceOf is the resource whose token a protocol uses.
func resourceOf(protocol string) token.Resource {
	if protocol == config.ProtocolGraph {
		return token.Graph
	}
	return token.Exchange
}
