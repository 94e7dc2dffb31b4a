package doctor

import (
	"crypto/x509"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/mailoauth/mailoauth/config"
	"github.com/mailoauth/mailoauth/doctor/catalog"
)

// checkConfig is the first link: what the account's flow needs is set, its secrets can be read, its
// certificate loads and is valid now. config.Load has already checked the file's form and rules; this
// looks at what those rules cannot: the contents behind the paths and variables. Values are never
// put in a finding.
func checkConfig(acc *config.Account, s catalog.Subject, protocols []string, now time.Time) (*catalog.Finding, []catalog.Finding) {
	missing := func(cause, fix string) (*catalog.Finding, []catalog.Finding) {
		return &catalog.Finding{Code: catalog.CodeConfigMissing, Step: "config", Cause: cause, Fix: fix, Docs: catalog.DocOAuth}, nil
	}
	if s.Mailbox == "" && slices.ContainsFunc(protocols, func(p string) bool { return p != "" }) {
		what := "email"
		if acc.Flow == config.FlowClientCredentials {
			what = "mailbox"
		}
		return missing("account "+acc.Name+" names no mailbox to open (neither email nor mailbox is set)",
			"set "+what+" = \"user@example.com\" in [accounts."+acc.Name+"]")
	}
	if acc.Flow == config.FlowClientCredentials {
		switch acc.Tenant {
		case "", config.TenantOrganizations, config.TenantCommon, config.TenantConsumers:
			return missing("the client_credentials flow needs the tenant itself, not "+firstNonEmpty(acc.Tenant, "the default organizations"),
				"set tenant to the Directory (tenant) ID or a verified domain (Entra admin center > Overview)")
		}
	}
	if f := checkSecret(acc, "client_secret", acc.ClientSecretEnv, acc.ClientSecretFile); f != nil {
		return f, nil
	}
	var notes []catalog.Finding
	if v := readable(acc.ClientSecretEnv, acc.ClientSecretFile); guidRE.MatchString(v) {
		notes = append(notes, catalog.Finding{Code: catalog.CodeConfigSecretID, Step: "config",
			Cause: "the client secret has the shape of a GUID: it is probably the secret's ID, not its value (which Entra shows once, when the secret is created)",
			Fix:   "if the token request fails with AADSTS7000215, create a new secret and copy its Value", Docs: catalog.DocClientSecret})
	}
	if acc.Flow == config.FlowPassword {
		if f := checkSecret(acc, "password", acc.PasswordEnv, acc.PasswordFile); f != nil {
			return f, nil
		}
	}
	if acc.Flow == config.FlowRefreshToken {
		if f := checkSecret(acc, "refresh_token", acc.RefreshTokenEnv, acc.RefreshTokenFile); f != nil {
			return f, nil
		}
	}
	if acc.Certificate != "" {
		if f := checkCertificate(acc, s, now); f != nil {
			return f, nil
		}
	}
	return nil, notes
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// readable is a secret's value from its variable or file, or "" (for shape checks only).
func readable(env, file string) string {
	if env != "" {
		return os.Getenv(env)
	}
	if file != "" {
		if b, err := os.ReadFile(file); err == nil {
			return strings.TrimRight(string(b), "\r\n")
		}
	}
	return ""
}

// checkSecret: a secret configured by variable or file can be read and is not empty.
func checkSecret(acc *config.Account, what, env, file string) *catalog.Finding {
	problem := func(cause, fix string) *catalog.Finding {
		return &catalog.Finding{Code: catalog.CodeConfigSecret, Step: "config", Cause: cause, Fix: fix}
	}
	switch {
	case env != "":
		if os.Getenv(env) == "" {
			return problem("the environment variable "+env+" ("+what+"_env of account "+acc.Name+") is not set or empty",
				"export "+env+" in the environment mailoauth runs in (a service's unit file, cron's environment), or use "+what+"_file")
		}
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return problem(what+"_file "+file+" cannot be read ("+pathErr(err)+")",
				"check the path (relative paths are relative to the configuration file) and that the user running mailoauth may read it (chmod 600, owned by that user)")
		}
		if strings.TrimSpace(string(b)) == "" {
			return problem(what+"_file "+file+" is empty", "write the "+what+" into it, alone on one line")
		}
	}
	return nil
}

func pathErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// checkCertificate: the certificate file reads, its password opens it, and it is valid now. An
// expired certificate is refused by Entra (DocCertCredentials) — better said here, with the date.
func checkCertificate(acc *config.Account, s catalog.Subject, now time.Time) *catalog.Finding {
	bad := func(code, cause, fix string) *catalog.Finding {
		return &catalog.Finding{Code: code, Step: "config", Cause: cause, Fix: fix, Docs: catalog.DocCertCredentials}
	}
	data, err := os.ReadFile(acc.Certificate)
	if err != nil {
		return bad(catalog.CodeConfigCert, "certificate "+acc.Certificate+" cannot be read ("+pathErr(err)+")",
			"check the path (relative to the configuration file) and its permissions")
	}
	if f := checkSecret(acc, "certificate_password", acc.CertificatePasswordEnv, acc.CertificatePasswordFile); f != nil {
		return f
	}
	pass := readable(acc.CertificatePasswordEnv, acc.CertificatePasswordFile)
	var certs []*x509.Certificate
	if strings.Contains(string(data), "-----BEGIN") {
		certs, _, err = confidential.CertFromPEM(data, pass)
		if err != nil {
			return bad(catalog.CodeConfigCert, "certificate "+acc.Certificate+" does not load as PEM with its private key ("+err.Error()+")",
				"put the certificate and its private key (PKCS#8 or PKCS#1, encrypted keys with certificate_password_file) in one PEM file")
		}
	} else {
		_, cert, _, perr := pkcs12.DecodeChain(data, pass)
		switch {
		case perr == pkcs12.ErrIncorrectPassword:
			return bad(catalog.CodeConfigPFXPassword, "the password for "+acc.Certificate+" is wrong",
				"put the PFX's password in "+firstNonEmpty(sourceName("certificate_password_file", acc.CertificatePasswordFile), sourceName("certificate_password_env", acc.CertificatePasswordEnv), "certificate_password_file"))
		case perr != nil:
			return bad(catalog.CodeConfigCert, "certificate "+acc.Certificate+" is neither PEM nor a PKCS#12 (.pfx) file mailoauth can read ("+perr.Error()+")",
				"export the certificate with its private key as .pfx, or as one PEM file")
		}
		certs = []*x509.Certificate{cert}
	}
	if len(certs) == 0 {
		return bad(catalog.CodeConfigCert, "certificate "+acc.Certificate+" holds no certificate", "export the certificate with its private key")
	}
	c := certs[0]
	switch {
	case now.After(c.NotAfter):
		return bad(catalog.CodeConfigCertExpired, "certificate "+acc.Certificate+" expired on "+c.NotAfter.UTC().Format(time.DateOnly),
			"create a new certificate, upload its public part under "+s.PortalApp()+" > Certificates & secrets > Certificates, and point certificate at the new file")
	case now.Before(c.NotBefore):
		return bad(catalog.CodeConfigCertExpired, "certificate "+acc.Certificate+" is not valid before "+c.NotBefore.UTC().Format(time.RFC3339)+" (or this machine's clock is behind)",
			"check this machine's clock, or wait until the certificate is valid")
	}
	return nil
}

func sourceName(key, val string) string {
	if val == "" {
		return ""
	}
	return key + " " + val
}
