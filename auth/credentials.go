package auth

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/mailoauth/mailoauth/config"
)

// ConfigError is a problem with an account's configuration found when using it (a secret file that
// cannot be read, a certificate that does not load): the CLI exits 2 for it.
type ConfigError struct {
	Account string
	Msg     string
}

func (e *ConfigError) Error() string     { return "account " + e.Account + ": " + e.Msg }
func (e *ConfigError) ConfigError() bool { return true }

func cfgErr(acc *config.Account, format string, args ...any) error {
	return &ConfigError{Account: acc.Name, Msg: fmt.Sprintf(format, args...)}
}

// secretFrom reads a secret from the environment variable or file the config names. Neither its value
// nor any part of it ever reaches an error message.
func secretFrom(acc *config.Account, what, inline, env, file string) (string, error) {
	switch {
	case inline != "":
		return inline, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return "", cfgErr(acc, "%s: environment variable %s is not set; export it or use %s_file", what, env, what)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", cfgErr(acc, "%s_file %s cannot be read (%v); check the path and its permissions", what, file, pathErr(err))
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", cfgErr(acc, "%s_file %s is empty", what, file)
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
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// credential builds the confidential client credential of an account: a secret, or a certificate from
// PEM (certificate + key, the key optionally encrypted) or PKCS#12 (.pfx/.p12).
func credential(acc *config.Account) (confidential.Credential, error) {
	if acc.Certificate != "" {
		certs, key, err := loadCertificate(acc)
		if err != nil {
			return confidential.Credential{}, err
		}
		return confidential.NewCredFromCert(certs, key)
	}
	secret, err := secretFrom(acc, "client_secret", string(acc.ClientSecret), acc.ClientSecretEnv, acc.ClientSecretFile)
	if err != nil {
		return confidential.Credential{}, err
	}
	if secret == "" {
		return confidential.Credential{}, cfgErr(acc, "flow %s needs a client credential: set client_secret_file, client_secret_env or certificate", acc.Flow)
	}
	return confidential.NewCredFromSecret(secret)
}

func loadCertificate(acc *config.Account) ([]*x509.Certificate, crypto.PrivateKey, error) {
	data, err := os.ReadFile(acc.Certificate)
	if err != nil {
		return nil, nil, cfgErr(acc, "certificate %s cannot be read (%v)", acc.Certificate, pathErr(err))
	}
	pass, err := secretFrom(acc, "certificate_password", "", acc.CertificatePasswordEnv, acc.CertificatePasswordFile)
	if err != nil {
		return nil, nil, err
	}
	if strings.Contains(string(data), "-----BEGIN") {
		certs, key, err := confidential.CertFromPEM(data, pass)
		if err != nil {
			return nil, nil, cfgErr(acc, "certificate %s does not load as PEM (certificate and private key): %v", acc.Certificate, err)
		}
		return certs, key, nil
	}
	// MSAL has no PKCS#12 loader (research/msal-go.md); go-pkcs12 is the maintained one.
	key, cert, chain, err := pkcs12.DecodeChain(data, pass)
	if err != nil {
		if err == pkcs12.ErrIncorrectPassword {
			return nil, nil, cfgErr(acc, "certificate %s: the PFX password is wrong; check certificate_password_file or certificate_password_env", acc.Certificate)
		}
		return nil, nil, cfgErr(acc, "certificate %s is neither PEM nor a PKCS#12 (.pfx) file mailoauth can read: %v", acc.Certificate, err)
	}
	return append([]*x509.Certificate{cert}, chain...), key, nil
}
