package world

import "strings"

// Resource is an API that tokens are issued for.
type Resource struct {
	URI         string // canonical scope prefix
	AppID       string
	Aliases     []string        // other URIs that name it (their own value becomes the token's aud)
	Delegated   map[string]bool // permission names usable as scp
	Application map[string]bool // permission names usable as roles
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[strings.ToLower(n)] = true
	}
	return m
}

// Resources the emulator knows. Graph also exposes IMAP.AccessAsUser.All, POP.AccessAsUser.All and
// SMTP.Send (the portal lists them under Microsoft Graph), which is why an unprefixed
// "IMAP.AccessAsUser.All" scope yields a Graph token that Exchange refuses: the most common mistake.
var Resources = []*Resource{
	{
		URI: ExchangeResource, AppID: ExchangeAppID, Aliases: []string{ExchangeResourceAlias},
		Delegated:   set("IMAP.AccessAsUser.All", "POP.AccessAsUser.All", "SMTP.Send", "EWS.AccessAsUser.All"),
		Application: set("IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp", "full_access_as_app"),
	},
	{
		URI: GraphResource, AppID: GraphAppID,
		Delegated: set("Mail.Read", "Mail.ReadBasic", "Mail.ReadWrite", "Mail.Send", "Mail.Read.Shared",
			"Mail.ReadWrite.Shared", "Mail.Send.Shared", "User.Read", "IMAP.AccessAsUser.All",
			"POP.AccessAsUser.All", "SMTP.Send"),
		Application: set("Mail.Read", "Mail.ReadBasic", "Mail.ReadWrite", "Mail.Send", "User.Read.All"),
	},
	{
		// Azure Resource Manager, no mail API: Entra issues tokens for any resource a scope names, so an
		// account whose scopes name another API (https://management.azure.com/.default) gets a token
		// Exchange and Graph refuse as another resource's. It has no application permissions: an
		// app-only token for it carries no roles.
		URI: ARMResource, AppID: ARMAppID,
		Delegated:   set("user_impersonation"),
		Application: set(),
	},
}

// LookupResource finds a resource by URI, alias or app id (case-insensitive, trailing slash ignored).
// It returns the resource and the URI as it was written, which becomes the token's audience.
func LookupResource(ref string) (*Resource, string) {
	ref = strings.TrimRight(ref, "/")
	for _, r := range Resources {
		if strings.EqualFold(ref, r.URI) || strings.EqualFold(ref, r.AppID) {
			return r, r.URI
		}
		for _, a := range r.Aliases {
			if strings.EqualFold(ref, a) {
				return r, a
			}
		}
	}
	return nil, ""
}

// SplitPermission splits "https://outlook.office.com/IMAP.AccessAsUser.All" into the resource and the
// permission name. A name without a resource belongs to Microsoft Graph, as in Entra.
func SplitPermission(p string) (resource *Resource, audience, name string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		r, aud := LookupResource(GraphResource)
		return r, aud, p
	}
	r, aud := LookupResource(p[:i])
	return r, aud, p[i+1:]
}

// CanonicalPermission writes a permission as "<resource URI>/<Name>" with the resource's canonical URI
// and the name as the resource spells it; ok is false for an unknown resource or name.
func CanonicalPermission(p string, application bool) (string, bool) {
	r, _, name := SplitPermission(p)
	if r == nil {
		return "", false
	}
	known := r.Delegated
	if application {
		known = r.Application
	}
	if !known[strings.ToLower(name)] {
		return "", false
	}
	return r.URI + "/" + name, true
}
