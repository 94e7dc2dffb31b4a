package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/mailoauth/mailoauth/config"
)

// ConfigError is a problem with an account's configuration found when using it (a secret file that
// cannot be read, a certificate that does not load): the CLI exits 2 for it.
type ConfigError struct {
	Account string // the account's Name
	Msg     string // what is wrong and how to fix it, naming the setting as its user wrote it
}

// Error returns "account NAME: " and the message.
func (e *ConfigError) Error() string { return "account " + e.Account + ": " + e.Msg }

// ConfigError marks the error as a configuration problem: the CLI exits with status 2 for it.
func (e *ConfigError) ConfigError() bool { return true }

// cfgErr reports a problem with acc. Messages name its settings with acc.KeyName, so that the user
// reads what they wrote: a TOML key for an account from a file, a Go field for one built in code.
func cfgErr(acc *config.Account, format string, args ...any) error {
	return &ConfigError{Account: acc.Name, Msg: fmt.Sprintf(format, args...)}
}

// secretFrom returns a secret given as a value, else read from the environment variable or file
// the account names; "" when none is set. what is the settings' common TOML stem ("client_secret"
// for client_secret_env and client_secret_file). Neither the value nor any part of it ever reaches
// an error message.
func secretFrom(acc *config.Account, what, value, env, file string) (string, error) {
	switch {
	case value != "":
		return value, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return "", cfgErr(acc, "%s names the environment variable %s, which is not set; export it or use %s",
				acc.KeyName(what+"_env"), env, acc.KeyName(what+"_file"))
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", cfgErr(acc, "%s %s cannot be read (%v); check the path and its permissions", acc.KeyName(what+"_file"), file, pathErr(err))
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", cfgErr(acc, "%s %s is empty", acc.KeyName(what+"_file"), file)
		}
		return v, nil
	}
	return "", nil
}

// passwordOf returns the user's password of the password flow: Account.Password, else the
// variable PasswordEnv names, else the content of PasswordFile; "" when none is set.
func passwordOf(acc *config.Account) (string, error) {
	return secretFrom(acc, "password", string(acc.Password), acc.PasswordEnv, acc.PasswordFile)
}

// refreshTokenOf returns the refresh token the refresh_token flow imports: Account.RefreshToken,
// else the variable RefreshTokenEnv names, else the content of RefreshTokenFile; "" when none is set.
func refreshTokenOf(acc *config.Account) (string, error) {
	return secretFrom(acc, "refresh_token", string(acc.RefreshToken), acc.RefreshTokenEnv, acc.RefreshTokenFile)
}

// pathErr keeps only the OS's reason, not the (already named) path.
func pathErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// rootCAs is the trust of the account's connections (HTTPS to the identity platform and Graph, TLS
// to the mail servers): Account.RootCAs when set, else the system's pool plus ca_file. Verification
// is never off.
func rootCAs(acc *config.Account) (*x509.CertPool, error) {
	if acc.RootCAs != nil {
		return acc.RootCAs, nil
	}
	if acc.CAFile == "" {
		return nil, nil // nil: the system's roots
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(acc.CAFile)
	if err != nil {
		return nil, cfgErr(acc, "%s %s cannot be read (%v)", acc.KeyName("ca_file"), acc.CAFile, pathErr(err))
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, cfgErr(acc, "%s %s holds no PEM certificate", acc.KeyName("ca_file"), acc.CAFile)
	}
	return pool, nil
}

// credential builds the confidential client credential of an account from the one it has (Check
// saw to it that there is exactly one): a certificate given in code, a PFX's bytes, a certificate
// file (PEM with its key, the key optionally encrypted, or PKCS#12), or a client secret given in
// code, in a variable or in a file.
func credential(acc *config.Account) (confidential.Credential, error) {
	switch {
	case acc.ClientCertificate != nil:
		return certificateCredential(acc, acc.ClientCertificate)
	case len(acc.PFX) > 0:
		certs, key, err := decodePFX(acc, acc.PFX, string(acc.PFXPassword), acc.KeyName("pfx"),
			"check "+acc.KeyName("pfx_password"))
		if err != nil {
			return confidential.Credential{}, err
		}
		return newCertCredential(acc, certs, key)
	case acc.Certificate != "":
		certs, key, err := loadCertificate(acc)
		if err != nil {
			return confidential.Credential{}, err
		}
		return newCertCredential(acc, certs, key)
	}
	secret, err := secretFrom(acc, "client_secret", string(acc.ClientSecret), acc.ClientSecretEnv, acc.ClientSecretFile)
	if err != nil {
		return confidential.Credential{}, err
	}
	if secret == "" {
		return confidential.Credential{}, cfgErr(acc, "flow %s needs a client credential: set %s", acc.Flow, credentialKeys(acc))
	}
	return confidential.NewCredFromSecret(secret)
}

// credentialKeys lists, for a message, where an account's client credential may come from.
func credentialKeys(acc *config.Account) string {
	keys := []string{"client_secret_file", "client_secret_env", "certificate"}
	if acc.KeyName("certificate") != "certificate" {
		keys = []string{"client_secret", "client_certificate", "pfx", "client_secret_env", "client_secret_file", "certificate"}
	}
	for i, k := range keys {
		keys[i] = acc.KeyName(k)
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " or " + keys[len(keys)-1]
}

// newCertCredential is MSAL's certificate credential, with its complaints as configuration errors.
func newCertCredential(acc *config.Account, certs []*x509.Certificate, key crypto.PrivateKey) (confidential.Credential, error) {
	cred, err := confidential.NewCredFromCert(certs, key)
	if err != nil {
		return confidential.Credential{}, cfgErr(acc, "the client certificate cannot be used: %v", err)
	}
	return cred, nil
}

// certificateCredential is the credential of a certificate given in code. An *rsa.PrivateKey goes
// to MSAL as a PEM file's key would; any other crypto.Signer (a key in an HSM or a cloud KMS, whose
// material never leaves it) signs the client assertion itself.
func certificateCredential(acc *config.Account, c *tls.Certificate) (confidential.Credential, error) {
	name := acc.KeyName("client_certificate")
	if len(c.Certificate) == 0 {
		return confidential.Credential{}, cfgErr(acc, "%s holds no certificate; build it with tls.X509KeyPair", name)
	}
	certs := make([]*x509.Certificate, 0, len(c.Certificate))
	for i, der := range c.Certificate {
		if i == 0 && c.Leaf != nil {
			certs = append(certs, c.Leaf)
			continue
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return confidential.Credential{}, cfgErr(acc, "%s: certificate %d does not parse: %v", name, i, err)
		}
		certs = append(certs, cert)
	}
	if key, ok := c.PrivateKey.(*rsa.PrivateKey); ok {
		return newCertCredential(acc, certs, key)
	}
	signer, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return confidential.Credential{}, cfgErr(acc, "%s has no private key that is a crypto.Signer", name)
	}
	if _, ok := signer.Public().(*rsa.PublicKey); !ok {
		return confidential.Credential{}, cfgErr(acc, "%s has a key that is not RSA; Entra accepts only RSA client certificates", name)
	}
	return confidential.NewCredFromAssertionCallback(assertionSigner(certs[0], signer)), nil
}

// assertionSigner returns an MSAL assertion callback that writes a private_key_jwt client
// assertion (RFC 7523) for leaf and signs it RS256 with signer, as MSAL does with a key it holds.
func assertionSigner(leaf *x509.Certificate, signer crypto.Signer) func(context.Context, confidential.AssertionRequestOptions) (string, error) {
	s1 := sha1.Sum(leaf.Raw)
	s256 := sha256.Sum256(leaf.Raw)
	b64 := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{
		"alg": "RS256", "typ": "JWT",
		"x5t": b64.EncodeToString(s1[:]), "x5t#S256": b64.EncodeToString(s256[:]),
	})
	return func(_ context.Context, o confidential.AssertionRequestOptions) (string, error) {
		jti := make([]byte, 16)
		if _, err := rand.Read(jti); err != nil {
			return "", err
		}
		now := time.Now()
		claims, err := json.Marshal(map[string]any{
			"aud": o.TokenEndpoint, "iss": o.ClientID, "sub": o.ClientID, "jti": b64.EncodeToString(jti),
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		})
		if err != nil {
			return "", err
		}
		input := b64.EncodeToString(header) + "." + b64.EncodeToString(claims)
		digest := sha256.Sum256([]byte(input))
		sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return "", fmt.Errorf("the client certificate's key did not sign the client assertion: %w", err)
		}
		return input + "." + b64.EncodeToString(sig), nil
	}
}

// loadCertificate reads the certificate file an account names: PEM (certificate and key) or PKCS#12.
func loadCertificate(acc *config.Account) ([]*x509.Certificate, crypto.PrivateKey, error) {
	name := acc.KeyName("certificate")
	data, err := os.ReadFile(acc.Certificate)
	if err != nil {
		return nil, nil, cfgErr(acc, "%s %s cannot be read (%v)", name, acc.Certificate, pathErr(err))
	}
	pass, err := secretFrom(acc, "certificate_password", "", acc.CertificatePasswordEnv, acc.CertificatePasswordFile)
	if err != nil {
		return nil, nil, err
	}
	if strings.Contains(string(data), "-----BEGIN") {
		certs, key, err := confidential.CertFromPEM(data, pass)
		if err != nil {
			return nil, nil, cfgErr(acc, "%s %s does not load as PEM (certificate and private key): %v", name, acc.Certificate, err)
		}
		return certs, key, nil
	}
	return decodePFX(acc, data, pass, name+" "+acc.Certificate,
		"check "+acc.KeyName("certificate_password_file")+" or "+acc.KeyName("certificate_password_env"))
}

// decodePFX decodes a PKCS#12 file's content; what names it in messages, and passwordFix says where
// its password comes from. MSAL has no PKCS#12 loader; go-pkcs12 is the maintained one.
func decodePFX(acc *config.Account, data []byte, password, what, passwordFix string) ([]*x509.Certificate, crypto.PrivateKey, error) {
	key, cert, chain, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, nil, cfgErr(acc, "%s: the PFX password is wrong; %s", what, passwordFix)
		}
		return nil, nil, cfgErr(acc, "%s is neither PEM nor a PKCS#12 (.pfx) file mailoauth can read: %v", what, err)
	}
	return append([]*x509.Certificate{cert}, chain...), key, nil
}
