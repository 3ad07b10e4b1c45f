package auth

import "github.com/wataomi/wataomi/config"

// TokensFromConfig builds the access-token issuer/verifier from SECRET_KEY, JWT_ISSUER, JWT_AUDIENCE
// and ACCESS_TOKEN_EXPIRE_MINUTES: the one mapping the server, the CLI and the tests share.
func TokensFromConfig(cfg *config.Config) (*Tokens, error) {
	return NewTokens(TokenConfig{Secret: cfg.SecretKey, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.AccessTokenTTL()})
}

// CasdoorFromConfig builds the Casdoor client from CASDOOR_*, or returns nil when single sign-on is
// not configured (its operations then answer 503).
func CasdoorFromConfig(cfg *config.Config) (*Casdoor, error) {
	if !cfg.CasdoorConfigured() {
		return nil, nil
	}
	return NewCasdoor(CasdoorConfig{Endpoint: cfg.CasdoorEndpoint, ClientID: cfg.CasdoorClientID,
		ClientSecret: cfg.CasdoorClientSecret, OrgName: cfg.CasdoorOrgName, AppName: cfg.CasdoorAppName,
		Issuer: cfg.CasdoorIssuer, CertificatePEM: cfg.CasdoorCertificate, RoleClaim: cfg.CasdoorRoleClaim})
}
