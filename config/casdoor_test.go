package config

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// certFixtures are throwaway self-signed certificates, generated once per
// test binary because RSA key generation is slow.
type certFixtures struct {
	pem1, pem2 string // RSA certificates (CN casdoor-1, casdoor-2)
	ecdsa      string // an ECDSA certificate: valid X.509, unusable for RS256
	rsa1024    string // an RSA certificate with a key below minCasdoorRSABits
	privateKey string // the RSA key as a PKCS#8 PRIVATE KEY block
}

var testCerts = sync.OnceValue(func() certFixtures {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	smallKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		panic(err)
	}
	return certFixtures{
		pem1:       selfSigned(rsaKey, "casdoor-1", 1),
		pem2:       selfSigned(rsaKey, "casdoor-2", 2),
		ecdsa:      selfSigned(ecKey, "casdoor-ec", 3),
		rsa1024:    selfSigned(smallKey, "casdoor-small", 4),
		privateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
})

func selfSigned(key crypto.Signer, cn string, serial int64) string {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// pemBodyLine is the first base64 line of a PEM block: text that only a
// printed value could contain.
func pemBodyLine(t *testing.T, p string) string {
	t.Helper()
	lines := strings.Split(p, "\n")
	if len(lines) < 3 || len(lines[1]) < 40 {
		t.Fatalf("unexpected PEM shape: %q", p)
	}
	return lines[1]
}

func TestCasdoorDerivedDefaults(t *testing.T) {
	tests := []struct {
		name         string
		env          map[string]string
		files        map[string]string
		wantEndpoint string
		wantIssuer   string
		wantRedirect []string
	}{
		{"nothing set", nil, nil, "", "", []string{"http://localhost:3000/auth/callback"}},
		{"issuer follows the endpoint", map[string]string{"CASDOOR_ENDPOINT": "http://localhost:8030"}, nil,
			"http://localhost:8030", "http://localhost:8030", []string{"http://localhost:3000/auth/callback"}},
		{"trailing slashes leave the endpoint and its issuer", map[string]string{"CASDOOR_ENDPOINT": "https://sso.example.com/casdoor//"}, nil,
			"https://sso.example.com/casdoor", "https://sso.example.com/casdoor", []string{"http://localhost:3000/auth/callback"}},
		{"explicit issuer wins", map[string]string{"CASDOOR_ENDPOINT": "http://casdoor:8000", "CASDOOR_ISSUER": "https://sso.example.com"}, nil,
			"http://casdoor:8000", "https://sso.example.com", []string{"http://localhost:3000/auth/callback"}},
		{"redirect follows FRONTEND_URL", map[string]string{"FRONTEND_URL": "https://app.example.com/"}, nil,
			"", "", []string{"https://app.example.com/auth/callback"}},
		{"redirect follows a FRONTEND_URL with a path", map[string]string{"FRONTEND_URL": "https://example.com/app", "CORS_ORIGINS": "https://example.com"}, nil,
			"", "", []string{"https://example.com/app/auth/callback"}},
		{"explicit redirect list wins, kept exactly", map[string]string{"CASDOOR_REDIRECT_URIS": " https://a.example.com/cb/ ,,http://localhost:5173/auth/callback"}, nil,
			"", "", []string{"https://a.example.com/cb/", "http://localhost:5173/auth/callback"}},
		{"redirect list from a yaml sequence", nil,
			map[string]string{"config.yaml": "casdoor_redirect_uris:\n  - https://y.example.com/cb\n  - https://z.example.com/cb\n"},
			"", "", []string{"https://y.example.com/cb", "https://z.example.com/cb"}},
		{"yaml endpoint, env issuer", map[string]string{"CASDOOR_ISSUER": "iss-from-env"},
			map[string]string{"config.yaml": "casdoor_endpoint: https://yaml.example.com\n"},
			"https://yaml.example.com", "iss-from-env", []string{"http://localhost:3000/auth/callback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := mustLoad(t, tt.env, tt.files)
			if c.CasdoorEndpoint != tt.wantEndpoint || c.CasdoorIssuer != tt.wantIssuer {
				t.Errorf("endpoint %q, issuer %q; want %q, %q", c.CasdoorEndpoint, c.CasdoorIssuer, tt.wantEndpoint, tt.wantIssuer)
			}
			if !slices.Equal(c.CasdoorRedirectURIs, tt.wantRedirect) {
				t.Errorf("CasdoorRedirectURIs = %q, want %q", c.CasdoorRedirectURIs, tt.wantRedirect)
			}
		})
	}

	t.Run("an invalid FRONTEND_URL is reported once, not again as a redirect URI", func(t *testing.T) {
		_, _, err := load(t, map[string]string{"FRONTEND_URL": "app.example.com", "CORS_ORIGINS": "https://app.example.com"}, nil)
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) != 1 || !strings.Contains(err.Error(), "FRONTEND_URL") {
			t.Fatalf("err = %v, want exactly the FRONTEND_URL problem", err)
		}
	})
}

func TestDurationHelpers(t *testing.T) {
	c, _ := mustLoad(t, map[string]string{
		"OAUTH_STATE_TTL_SECONDS":     "90",
		"REFRESH_REUSE_GRACE_SECONDS": "0",
		"API_TOKEN_MAX_TTL_DAYS":      "30",
		"IDEMPOTENCY_TTL_HOURS":       "48",
		"RATE_LIMIT_AI_PER_MINUTE":    "5",
	}, nil)
	for _, ch := range []struct {
		name      string
		got, want time.Duration
	}{
		{"OAuthStateTTL", c.OAuthStateTTL(), 90 * time.Second},
		{"RefreshReuseGrace", c.RefreshReuseGrace(), 0},
		{"APITokenMaxTTL", c.APITokenMaxTTL(), 30 * 24 * time.Hour},
		{"IdempotencyTTL", c.IdempotencyTTL(), 48 * time.Hour},
	} {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if c.RateLimitAIPerMinute != 5 || c.RateLimitPerMinute != 600 {
		t.Errorf("rate limits %d/%d", c.RateLimitAIPerMinute, c.RateLimitPerMinute)
	}
}

func TestCasdoorConfigured(t *testing.T) {
	full := map[string]string{
		"CASDOOR_ENDPOINT":      "http://localhost:8030",
		"CASDOOR_CLIENT_ID":     "id",
		"CASDOOR_CLIENT_SECRET": "secret-value",
		"CASDOOR_CERTIFICATE":   testCerts().pem1,
	}
	c, _ := mustLoad(t, full, nil)
	if !c.CasdoorConfigured() {
		t.Fatal("all four set, but CasdoorConfigured is false")
	}
	certs := c.CasdoorCertificates()
	if len(certs) != 1 || certs[0].Subject.CommonName != "casdoor-1" {
		t.Fatalf("CasdoorCertificates = %v", certs)
	}
	if _, ok := certs[0].PublicKey.(*rsa.PublicKey); !ok {
		t.Fatalf("public key %T", certs[0].PublicKey)
	}
	certs[0] = nil
	if c.CasdoorCertificates()[0] == nil {
		t.Fatal("CasdoorCertificates exposes the config's own slice")
	}
	for key := range full {
		t.Run("without "+key, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range full {
				if k != key {
					env[k] = v
				}
			}
			c, _ := mustLoad(t, env, nil)
			if c.CasdoorConfigured() {
				t.Fatalf("CasdoorConfigured is true without %s", key)
			}
		})
	}
}

func TestCasdoorCertificate(t *testing.T) {
	fx := testCerts()
	// A CERTIFICATE block whose DER is not a certificate; the marker must
	// never reach an error message, in either form.
	const marker = "cert-marker-do-not-print"
	garbage := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte(marker + strings.Repeat("!", 40))}))
	tests := []struct {
		name      string
		value     string
		wantCerts []string // common names, when valid
		wantErr   string
	}{
		{"one", fx.pem1, []string{"casdoor-1"}, ""},
		{"two during a rotation", fx.pem1 + fx.pem2, []string{"casdoor-1", "casdoor-2"}, ""},
		{"text around the blocks", "current:\n" + fx.pem1 + "\nnext:\n" + fx.pem2 + "\n", []string{"casdoor-1", "casdoor-2"}, ""},
		{"CRLF line ends", strings.ReplaceAll(fx.pem1, "\n", "\r\n"), []string{"casdoor-1"}, ""},
		{"not PEM", "MIIBkTCB+wIJAK", nil, "contains no PEM CERTIFICATE block"},
		{"literal \\n sequences on one line", strings.ReplaceAll(fx.pem1+fx.pem2, "\n", `\n`), []string{"casdoor-1", "casdoor-2"}, ""},
		{"truncated", fx.pem1[:len(fx.pem1)/2], nil, "contains no PEM CERTIFICATE block"},
		{"DER that is not a certificate", garbage, nil, "PEM block 1 is not a valid X.509 certificate"},
		{"a good block, then a bad one", fx.pem1 + garbage, nil, "PEM block 2 is not a valid X.509 certificate"},
		{"a private key", fx.privateKey, nil, `PEM block 1 is of type "PRIVATE KEY"`},
		{"a certificate and its private key", fx.pem1 + fx.privateKey, nil, `PEM block 2 is of type "PRIVATE KEY"`},
		{"an ECDSA certificate", fx.ecdsa, nil, "certificate 1 has a ECDSA public key; Casdoor tokens are RS256"},
		{"a 1024-bit RSA key", fx.pem1 + fx.rsa1024, nil, "certificate 2 has a 1024-bit RSA key; at least 2048 bits are required"},
	}
	for _, tt := range tests {
		for _, appEnv := range []string{EnvDevelopment, EnvProduction} {
			t.Run(tt.name+" in "+appEnv, func(t *testing.T) {
				env := map[string]string{"CASDOOR_CERTIFICATE": tt.value}
				if appEnv == EnvProduction {
					env = prodEnv(env)
				}
				c, _, err := load(t, env, nil)
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("Load: %v", err)
					}
					var names []string
					for _, cert := range c.CasdoorCertificates() {
						names = append(names, cert.Subject.CommonName)
					}
					if !slices.Equal(names, tt.wantCerts) {
						t.Fatalf("certificates %q, want %q", names, tt.wantCerts)
					}
					if strings.Contains(c.CasdoorCertificate, `\n`) {
						t.Errorf("CasdoorCertificate still holds literal \\n sequences")
					}
					return
				}
				var ve *ValidationError
				if !errors.As(err, &ve) || !strings.Contains(err.Error(), "CASDOOR_CERTIFICATE: "+tt.wantErr) {
					t.Fatalf("err = %v\nwant it to contain %q", err, "CASDOOR_CERTIFICATE: "+tt.wantErr)
				}
				if len(ve.Problems) != 1 {
					t.Errorf("%d problems, want only the certificate's:\n%v", len(ve.Problems), err)
				}
				msg := err.Error()
				leaks := []string{marker, base64.StdEncoding.EncodeToString([]byte(marker))[:16]}
				for _, line := range strings.Split(tt.value, "\n") {
					if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") {
						leaks = append(leaks, line[:16])
					}
				}
				for _, leak := range leaks {
					if strings.Contains(msg, leak) {
						t.Errorf("the error quotes the certificate value (%q):\n%s", leak, msg)
					}
				}
				if c == nil || c.CasdoorCertificates() != nil {
					t.Errorf("an invalid value left certificates behind")
				}
			})
		}
	}
}

func TestCasdoorSecretsNeverPrinted(t *testing.T) {
	const secret = "casdoor-client-secret-do-not-print"
	fx := testCerts()
	cases := []struct {
		name string
		env  map[string]string
	}{
		{"valid production", prodEnv(map[string]string{"CASDOOR_CLIENT_SECRET": secret})},
		{"production missing the certificate", prodEnv(map[string]string{"CASDOOR_CLIENT_SECRET": secret, "CASDOOR_CERTIFICATE": ""})},
		{"production with a bad certificate and endpoint", prodEnv(map[string]string{"CASDOOR_CLIENT_SECRET": secret,
			"CASDOOR_CERTIFICATE": fx.privateKey, "CASDOOR_ENDPOINT": "sso.example.com"})},
		{"development, partly configured", map[string]string{"CASDOOR_CLIENT_SECRET": secret, "CASDOOR_CERTIFICATE": fx.pem1}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := load(t, tt.env, nil)
			if c == nil {
				t.Fatalf("no config: %v", err)
			}
			var out bytes.Buffer
			if err := c.WriteCheck(&out); err != nil {
				t.Fatal(err)
			}
			printed := []string{out.String(), strings.Join(c.Warnings(), "\n")}
			if err != nil {
				printed = append(printed, err.Error())
			}
			leaks := []string{secret, pemBodyLine(t, fx.pem1), pemBodyLine(t, fx.privateKey)}
			for _, text := range printed {
				for _, leak := range leaks {
					if strings.Contains(text, leak) {
						t.Errorf("printed a secret (%q):\n%s", leak, text)
					}
				}
			}
			for _, line := range []string{"CASDOOR_CLIENT_SECRET=(set)\n", "CASDOOR_CERTIFICATE="} {
				if !strings.Contains(out.String(), line) {
					t.Errorf("config check lacks %q:\n%s", line, out.String())
				}
			}
		})
	}

	c, _ := mustLoad(t, nil, nil)
	for _, kv := range c.Redacted() {
		if (kv.Key == "CASDOOR_CLIENT_SECRET" || kv.Key == "CASDOOR_CERTIFICATE") && kv.Value != "(unset)" {
			t.Errorf("%s = %q, want (unset)", kv.Key, kv.Value)
		}
	}
}

// config check runs on a configuration that failed validation too, so values
// derived from a URL, and URL lists, must be redacted as URLs are.
func TestRedactionOfDerivedAndListedURLs(t *testing.T) {
	c, _, err := load(t, map[string]string{
		"CASDOOR_ENDPOINT":      "https://admin:endpoint-pw@sso.example.com",
		"CASDOOR_REDIRECT_URIS": "https://tok-one@a.example.com/cb,https://b.example.com/cb,https://u:pw-two@c.example.com/cb",
	}, nil)
	var ve *ValidationError
	if !errors.As(err, &ve) || c == nil {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "CASDOOR_ENDPOINT: must not contain credentials") ||
		!strings.Contains(err.Error(), "CASDOOR_REDIRECT_URIS: \"https://xxxxx@a.example.com/cb\" must not contain credentials") {
		t.Errorf("err = %v", err)
	}
	var out bytes.Buffer
	if err := c.WriteCheck(&out); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{out.String(), err.Error()} {
		for _, leak := range []string{"endpoint-pw", "tok-one", "pw-two"} {
			if strings.Contains(text, leak) {
				t.Errorf("printed %q:\n%s", leak, text)
			}
		}
	}
	for _, line := range []string{
		"CASDOOR_ENDPOINT=https://admin:xxxxx@sso.example.com\n",
		"CASDOOR_ISSUER=https://admin:xxxxx@sso.example.com\n",
		"CASDOOR_REDIRECT_URIS=https://xxxxx@a.example.com/cb,https://b.example.com/cb,https://u:xxxxx@c.example.com/cb\n",
		"JWT_ISSUER=wataomi-api\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("config check lacks %q:\n%s", line, out.String())
		}
	}
}
