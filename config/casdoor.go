package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// minCasdoorRSABits is the smallest RSA key accepted for verifying Casdoor
// tokens (the auth package refuses smaller ones too).
const minCasdoorRSABits = 2048

// casdoorVars are the settings without which Casdoor SSO cannot work; each
// is required in production.
func (c *Config) casdoorVars() []struct{ key, val string } {
	return []struct{ key, val string }{
		{"CASDOOR_ENDPOINT", c.CasdoorEndpoint},
		{"CASDOOR_CLIENT_ID", c.CasdoorClientID},
		{"CASDOOR_CLIENT_SECRET", c.CasdoorClientSecret},
		{"CASDOOR_CERTIFICATE", c.CasdoorCertificate},
	}
}

// CasdoorConfigured reports whether CASDOOR_ENDPOINT, CASDOOR_CLIENT_ID,
// CASDOOR_CLIENT_SECRET and CASDOOR_CERTIFICATE are all set. When it is false
// (development and test only: production refuses to start), the SSO
// endpoints answer 503.
func (c *Config) CasdoorConfigured() bool {
	for _, v := range c.casdoorVars() {
		if v.val == "" {
			return false
		}
	}
	return true
}

// CasdoorCertificates are the certificates Load parsed from
// CASDOOR_CERTIFICATE (several during a key rotation), each with an RSA public
// key; nil when it is unset.
func (c *Config) CasdoorCertificates() []*x509.Certificate { return slices.Clone(c.casdoorCerts) }

// checkCasdoor validates the Casdoor settings, parses the certificates and
// applies the production refusals. Neither the client secret nor the
// certificate is ever quoted.
func (c *Config) checkCasdoor(prod bool, bad func(key, format string, args ...any), warn func(format string, args ...any)) {
	if c.CasdoorEndpoint != "" {
		if problem := baseURLProblem(c.CasdoorEndpoint); problem != "" {
			bad("CASDOOR_ENDPOINT", "%s", problem)
		}
	}
	for _, u := range c.CasdoorRedirectURIs {
		if problem := redirectURIProblem(u); problem != "" {
			bad("CASDOOR_REDIRECT_URIS", "%s", problem)
		}
	}
	if !slices.Contains([]string{RoleClaimTag, RoleClaimRoles}, c.CasdoorRoleClaim) {
		bad("CASDOOR_ROLE_CLAIM", "must be tag or roles, got %q", c.CasdoorRoleClaim)
	}
	if !slices.Contains([]string{RoleSyncCreate, RoleSyncLogin}, c.CasdoorRoleSync) {
		bad("CASDOOR_ROLE_SYNC", "must be create or login, got %q", c.CasdoorRoleSync)
	}
	if c.CasdoorCertificate != "" {
		c.CasdoorCertificate = unescapePEM(c.CasdoorCertificate)
		certs, err := parseCertificates(c.CasdoorCertificate)
		if err != nil {
			bad("CASDOOR_CERTIFICATE", "%v", err)
		} else {
			c.casdoorCerts = certs
		}
	}

	var missing []string
	for _, v := range c.casdoorVars() {
		if v.val == "" {
			missing = append(missing, v.key)
		}
	}
	switch {
	case len(missing) == 0:
	case prod:
		for _, key := range missing {
			bad(key, "is required in production (Casdoor SSO is the only way users sign in)")
		}
	case len(missing) < len(c.casdoorVars()):
		warn("Casdoor SSO is partly configured (%s unset): the SSO endpoints answer 503", strings.Join(missing, ", "))
	}
}

// baseURLProblem explains why s cannot be a service base URL, or returns "".
// Credentials are refused without quoting the URL.
func baseURLProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || !isHTTPURL(s):
		return fmt.Sprintf("must be an absolute http(s) URL, got %q", redactURL(s, true))
	case u.User != nil:
		return "must not contain credentials (user info)"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "must not have a query or fragment"
	}
	return ""
}

// redirectURIProblem explains why s cannot be an OAuth redirect URI, or
// returns "" (RFC 6749 §3.1.2: absolute, no fragment).
func redirectURIProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || !isHTTPURL(s):
		return fmt.Sprintf("%q is not an absolute http(s) URL", redactURL(s, true))
	case u.User != nil:
		return fmt.Sprintf("%q must not contain credentials (user info)", redactURL(s, true))
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Sprintf("%q must not have a fragment", s)
	}
	return ""
}

// ParseCasdoorCertificates is the one parser of CASDOOR_CERTIFICATE, used by Load (to refuse a bad
// value at startup) and by the Casdoor verifier.
func ParseCasdoorCertificates(s string) ([]*x509.Certificate, error) {
	return parseCertificates(unescapePEM(s))
}

// unescapePEM reads the literal \n sequences of a PEM pasted into a one-line variable as the line
// breaks they stand for.
func unescapePEM(s string) string {
	if !strings.Contains(s, "\n") && strings.Contains(s, `\n`) {
		return strings.ReplaceAll(s, `\n`, "\n")
	}
	return s
}

// parseCertificates returns every certificate in a PEM bundle. All blocks
// must be CERTIFICATE blocks (a private key pasted alongside is refused, not
// skipped) holding an X.509 certificate with an RSA key of at least
// minCasdoorRSABits (Casdoor signs RS256). Errors never quote the input.
func parseCertificates(s string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(s)
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is of type %q; only CERTIFICATE blocks are accepted", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d is not a valid X.509 certificate: %v", n, err)
		}
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("certificate %d has a %v public key; Casdoor tokens are RS256, which needs RSA", n, cert.PublicKeyAlgorithm)
		}
		if bits := pub.N.BitLen(); bits < minCasdoorRSABits {
			return nil, fmt.Errorf("certificate %d has a %d-bit RSA key; at least %d bits are required", n, bits, minCasdoorRSABits)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("contains no PEM CERTIFICATE block (-----BEGIN CERTIFICATE-----)")
	}
	return certs, nil
}
