package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer   = "wataomi-api"
	testAudience = "wataomi-web"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")
	testNow    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func newTestTokens(t testing.TB) *Tokens {
	t.Helper()
	tk, err := NewTokens(TokenConfig{Secret: testSecret, Issuer: testIssuer, Audience: testAudience, TTL: 30 * time.Minute})
	if err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	tk.now = func() time.Time { return testNow }
	return tk
}

// goodClaims are claims a correct token carries; tests mutate one thing.
func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub":       "42",
		"role":      "admin",
		"jti":       "jti-0123456789abcdef",
		"sid":       "sid-0123456789abcdef",
		"iat":       testNow.Unix(),
		"exp":       testNow.Add(30 * time.Minute).Unix(),
		"iss":       testIssuer,
		"aud":       testAudience,
		"token_use": "access",
	}
}

// sign builds a token by hand with golang-jwt, independently of Issue.
func sign(t testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = "at+jwt"
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func hs256(t testing.TB, claims jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodHS256, testSecret, nil, claims)
}

func b64(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// expectReject asserts that Verify rejects tok with the given reason (any
// reason if want is ""), with an error that matches ErrInvalidToken and does
// not contain the token.
func expectReject(t *testing.T, tk *Tokens, tok, want string) {
	t.Helper()
	c, err := tk.Verify(tok)
	if err == nil {
		t.Fatalf("Verify accepted a bad token: claims %+v", c)
	}
	if !errors.Is(err, ErrInvalidToken) {
		t.Errorf("errors.Is(err, ErrInvalidToken) = false for %v", err)
	}
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("error %T is not a *TokenError", err)
	}
	if want != "" && te.Reason != want {
		t.Errorf("reason = %q, want %q", te.Reason, want)
	}
	if te.Reason == "" {
		t.Error("empty reason")
	}
	if c != (AccessClaims{}) {
		t.Errorf("claims returned with an error: %+v", c)
	}
	assertNoLeak(t, err, tok)
}

func assertNoLeak(t *testing.T, err error, tok string) {
	t.Helper()
	for _, msg := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		if len(tok) >= 8 && strings.Contains(msg, tok) {
			t.Errorf("error message contains the token: %q", msg)
		}
		for _, part := range strings.Split(tok, ".") {
			if len(part) >= 8 && strings.Contains(msg, part) {
				t.Errorf("error message contains a token segment: %q", msg)
			}
		}
	}
}

func TestNewTokensConfig(t *testing.T) {
	good := TokenConfig{Secret: testSecret, Issuer: testIssuer, Audience: testAudience, TTL: time.Minute}
	if _, err := NewTokens(good); err != nil {
		t.Fatalf("good config rejected: %v", err)
	}
	bad := map[string]func(*TokenConfig){
		"short secret": func(c *TokenConfig) { c.Secret = testSecret[:31] },
		"nil secret":   func(c *TokenConfig) { c.Secret = nil },
		"no issuer":    func(c *TokenConfig) { c.Issuer = "" },
		"no audience":  func(c *TokenConfig) { c.Audience = "" },
		"zero ttl":     func(c *TokenConfig) { c.TTL = 0 },
		"negative ttl": func(c *TokenConfig) { c.TTL = -time.Minute },
	}
	for name, mut := range bad {
		t.Run(name, func(t *testing.T) {
			c := good
			mut(&c)
			if _, err := NewTokens(c); err == nil {
				t.Fatal("bad config accepted")
			}
		})
	}
	// Exactly 32 bytes is enough.
	c := good
	c.Secret = testSecret[:32]
	if _, err := NewTokens(c); err != nil {
		t.Fatalf("32-byte secret rejected: %v", err)
	}
}

func TestSecretIsCopied(t *testing.T) {
	secret := append([]byte(nil), testSecret...)
	tk, err := NewTokens(TokenConfig{Secret: secret, Issuer: testIssuer, Audience: testAudience, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := tk.Issue(1, "user", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range secret {
		secret[i] = 0
	}
	if _, err := tk.Verify(tok); err != nil {
		t.Fatalf("mutating the caller's secret broke verification: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	tk := newTestTokens(t)
	tok, issued, err := tk.Issue(42, "admin", "family-1", 0)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	got, err := tk.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.UserID != issued.UserID || got.Role != issued.Role || got.JTI != issued.JTI || got.SID != issued.SID ||
		!got.IssuedAt.Equal(issued.IssuedAt) || !got.ExpiresAt.Equal(issued.ExpiresAt) {
		t.Errorf("Verify = %+v, Issue returned %+v", got, issued)
	}
	want := AccessClaims{UserID: 42, Role: "admin", SID: "family-1", JTI: issued.JTI,
		IssuedAt: testNow, ExpiresAt: testNow.Add(30 * time.Minute)}
	if !got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		got.UserID != want.UserID || got.Role != want.Role || got.SID != want.SID {
		t.Errorf("claims = %+v, want %+v", got, want)
	}

	// The wire format is exactly what PRODUCT.md §3.2.1 specifies.
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	var hdr map[string]any
	var pl map[string]any
	decodeSeg(t, parts[0], &hdr)
	decodeSeg(t, parts[1], &pl)
	if hdr["alg"] != "HS256" || hdr["typ"] != "at+jwt" {
		t.Errorf("header = %v", hdr)
	}
	wantPayload := map[string]any{
		"sub": "42", "role": "admin", "sid": "family-1", "jti": issued.JTI,
		"iat": float64(testNow.Unix()), "exp": float64(testNow.Add(30 * time.Minute).Unix()),
		"iss": testIssuer, "aud": testAudience, "token_use": "access",
	}
	if len(pl) != len(wantPayload) {
		t.Errorf("payload has %d claims, want %d: %v", len(pl), len(wantPayload), pl)
	}
	for k, v := range wantPayload {
		if pl[k] != v {
			t.Errorf("claim %s = %#v, want %#v", k, pl[k], v)
		}
	}
	jti, err := base64.RawURLEncoding.DecodeString(issued.JTI)
	if err != nil || len(jti) != 16 {
		t.Errorf("jti %q is not 128 bits of base64url", issued.JTI)
	}
}

func decodeSeg(t *testing.T, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decode segment: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("unmarshal segment: %v", err)
	}
}

func TestIssueTTLAndIDs(t *testing.T) {
	tk := newTestTokens(t)
	_, c, err := tk.Issue(7, "user", "", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.ExpiresAt.Sub(c.IssuedAt); d != 5*time.Minute {
		t.Errorf("explicit ttl: lifetime %v", d)
	}
	_, c2, err := tk.Issue(7, "user", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := c2.ExpiresAt.Sub(c2.IssuedAt); d != 30*time.Minute {
		t.Errorf("default ttl: lifetime %v", d)
	}
	if c.SID == "" || c2.SID == "" || c.SID == c2.SID {
		t.Errorf("empty sid must give distinct random families: %q %q", c.SID, c2.SID)
	}
	if sid, err := base64.RawURLEncoding.DecodeString(c.SID); err != nil || len(sid) != 16 {
		t.Errorf("generated sid %q is not 128 bits of base64url", c.SID)
	}
	if c.JTI == c2.JTI {
		t.Error("jti repeated")
	}
	for _, tc := range []struct {
		uid int64
		ttl time.Duration
	}{{0, 0}, {-1, 0}, {1, -time.Second}, {1, time.Millisecond}} {
		if _, _, err := tk.Issue(tc.uid, "user", "", tc.ttl); err == nil {
			t.Errorf("Issue(%d, ttl %v) succeeded", tc.uid, tc.ttl)
		}
	}
}

func TestHandCraftedGoodTokenAccepted(t *testing.T) {
	// Guards the negative tests below: the hand-built baseline is valid, so
	// each rejection is due to the single defect introduced.
	tk := newTestTokens(t)
	c, err := tk.Verify(hs256(t, goodClaims()))
	if err != nil {
		t.Fatalf("baseline token rejected: %v", err)
	}
	if c.UserID != 42 || c.JTI != "jti-0123456789abcdef" || c.SID != "sid-0123456789abcdef" {
		t.Errorf("claims = %+v", c)
	}
	// aud as an array that contains our audience is accepted too.
	cl := goodClaims()
	cl["aud"] = []string{"other", testAudience}
	if _, err := tk.Verify(hs256(t, cl)); err != nil {
		t.Errorf("aud array containing ours rejected: %v", err)
	}
}

func TestAlgNone(t *testing.T) {
	tk := newTestTokens(t)
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		hdr := b64(t, map[string]any{"alg": alg, "typ": "at+jwt"})
		pl := b64(t, goodClaims())
		expectReject(t, tk, hdr+"."+pl+".", reasonAlgorithm)
		// Also with the correct HS256 signature bytes appended.
		good := strings.Split(hs256(t, goodClaims()), ".")
		expectReject(t, tk, hdr+"."+pl+"."+good[2], reasonAlgorithm)
	}
	// golang-jwt's own none signer.
	tok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"alg": "none"}, goodClaims())
	expectReject(t, tk, tok, reasonAlgorithm)
	// No alg at all.
	hdr := b64(t, map[string]any{"typ": "at+jwt"})
	expectReject(t, tk, hdr+"."+b64(t, goodClaims())+".", reasonMalformed)
}

func TestHSRSConfusion(t *testing.T) {
	tk := newTestTokens(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// RS256 token signed by a fresh RSA key.
	expectReject(t, tk, sign(t, jwt.SigningMethodRS256, key, nil, goodClaims()), reasonAlgorithm)
	expectReject(t, tk, sign(t, jwt.SigningMethodPS256, key, nil, goodClaims()), reasonAlgorithm)

	// HS256 token whose HMAC key is the PEM of an RSA public key.
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkix := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)})
	for _, k := range [][]byte{pkix, pkcs1, der} {
		expectReject(t, tk, sign(t, jwt.SigningMethodHS256, k, nil, goodClaims()), reasonSignature)
	}
}

func TestOtherHMACAlgorithms(t *testing.T) {
	tk := newTestTokens(t)
	expectReject(t, tk, sign(t, jwt.SigningMethodHS384, testSecret, nil, goodClaims()), reasonAlgorithm)
	expectReject(t, tk, sign(t, jwt.SigningMethodHS512, testSecret, nil, goodClaims()), reasonAlgorithm)
	// An HS256 signature under a header claiming HS512 is still refused.
	good := strings.Split(hs256(t, goodClaims()), ".")
	hdr := b64(t, map[string]any{"alg": "HS512", "typ": "at+jwt"})
	expectReject(t, tk, hdr+"."+good[1]+"."+good[2], reasonAlgorithm)
	// Unknown algorithm name.
	hdr = b64(t, map[string]any{"alg": "HS999", "typ": "at+jwt"})
	expectReject(t, tk, hdr+"."+good[1]+"."+good[2], reasonAlgorithm)
}

func TestWrongSecret(t *testing.T) {
	tk := newTestTokens(t)
	other := []byte("ffffffffffffffffffffffffffffffff-other-secret")
	expectReject(t, tk, sign(t, jwt.SigningMethodHS256, other, nil, goodClaims()), reasonSignature)
	// A token from another Tokens with a different secret.
	tk2, err := NewTokens(TokenConfig{Secret: other, Issuer: testIssuer, Audience: testAudience, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := tk2.Issue(1, "user", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	expectReject(t, tk, tok, reasonSignature)
}

func TestExpiryAndClockSkew(t *testing.T) {
	tk := newTestTokens(t)
	at := func(exp, iat time.Time) string {
		c := goodClaims()
		c["exp"] = exp.Unix()
		c["iat"] = iat.Unix()
		return hs256(t, c)
	}
	// Expired long ago.
	expectReject(t, tk, at(testNow.Add(-time.Hour), testNow.Add(-2*time.Hour)), reasonExpired)
	// Expired just beyond the 30 s leeway.
	expectReject(t, tk, at(testNow.Add(-31*time.Second), testNow.Add(-time.Hour)), reasonExpired)
	// Expired within the leeway: accepted.
	if _, err := tk.Verify(at(testNow.Add(-20*time.Second), testNow.Add(-time.Hour))); err != nil {
		t.Errorf("exp 20 s ago rejected: %v", err)
	}
	// iat 20 s in the future: accepted; 60 s: rejected.
	if _, err := tk.Verify(at(testNow.Add(time.Hour), testNow.Add(20*time.Second))); err != nil {
		t.Errorf("iat 20 s ahead rejected: %v", err)
	}
	expectReject(t, tk, at(testNow.Add(time.Hour), testNow.Add(time.Minute)), reasonNotYetValid)
	// nbf beyond the leeway.
	c := goodClaims()
	c["nbf"] = testNow.Add(time.Minute).Unix()
	expectReject(t, tk, hs256(t, c), reasonNotYetValid)

	// A token issued by us expires after its TTL plus the leeway.
	tok, _, err := tk.Issue(1, "user", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tk.now = func() time.Time { return testNow.Add(time.Minute + 31*time.Second) }
	expectReject(t, tk, tok, reasonExpired)
}

func TestMissingRequiredClaims(t *testing.T) {
	tk := newTestTokens(t)
	for _, claim := range []string{"exp", "iat", "jti", "sid"} {
		t.Run(claim, func(t *testing.T) {
			c := goodClaims()
			delete(c, claim)
			expectReject(t, tk, hs256(t, c), reasonMalformed)
			c = goodClaims()
			c[claim] = ""
			expectReject(t, tk, hs256(t, c), reasonMalformed)
		})
	}
}

func TestWrongIssuer(t *testing.T) {
	tk := newTestTokens(t)
	for _, iss := range []any{"evil", "wataomi-api ", "WATAOMI-API", "", nil} {
		c := goodClaims()
		if iss == nil {
			delete(c, "iss")
		} else {
			c["iss"] = iss
		}
		expectReject(t, tk, hs256(t, c), reasonIssuer)
	}
}

func TestWrongAudience(t *testing.T) {
	tk := newTestTokens(t)
	for _, aud := range []any{"evil", "", []string{"a", "b"}, []string{}, nil} {
		c := goodClaims()
		if aud == nil {
			delete(c, "aud")
		} else {
			c["aud"] = aud
		}
		expectReject(t, tk, hs256(t, c), reasonAudience)
	}
}

func TestTokenUse(t *testing.T) {
	tk := newTestTokens(t)
	for _, use := range []any{"refresh", "Access", "access-token", "", nil} {
		c := goodClaims()
		if use == nil {
			delete(c, "token_use")
		} else {
			c["token_use"] = use
		}
		expectReject(t, tk, hs256(t, c), reasonNotAccess)
	}
	// A non-string token_use is malformed.
	c := goodClaims()
	c["token_use"] = true
	expectReject(t, tk, hs256(t, c), reasonMalformed)
}

func TestHeaderTyp(t *testing.T) {
	tk := newTestTokens(t)
	for _, typ := range []any{"JWT", "at+JWT", "", nil, 1} {
		expectReject(t, tk, sign(t, jwt.SigningMethodHS256, testSecret, map[string]any{"typ": typ}, goodClaims()), reasonType)
	}
}

func TestSubject(t *testing.T) {
	tk := newTestTokens(t)
	for _, sub := range []string{"abc", "", "0", "-1", "+1", "042", "1.0", "1e3", " 1", "1 ", "0x10",
		"9223372036854775808", "99999999999999999999"} {
		c := goodClaims()
		c["sub"] = sub
		expectReject(t, tk, hs256(t, c), reasonSubject)
	}
	c := goodClaims()
	delete(c, "sub")
	expectReject(t, tk, hs256(t, c), reasonSubject)
	// A JSON number is not a string: malformed.
	c = goodClaims()
	c["sub"] = 42
	expectReject(t, tk, hs256(t, c), reasonMalformed)
	// Max int64 is fine.
	c = goodClaims()
	c["sub"] = "9223372036854775807"
	if got, err := tk.Verify(hs256(t, c)); err != nil || got.UserID != 9223372036854775807 {
		t.Errorf("max int64 sub: %+v, %v", got, err)
	}
}

func TestGarbage(t *testing.T) {
	tk := newTestTokens(t)
	good := hs256(t, goodClaims())
	parts := strings.Split(good, ".")
	cases := []string{
		"", " ", ".", "..", "...", "a", "a.b", "a.b.c", "a.b.c.d",
		"Bearer " + good, good + ".", good + " ", "." + good,
		parts[0] + "." + parts[1],                        // no signature segment
		parts[0] + "." + parts[1] + ".",                  // empty signature
		parts[0] + "==." + parts[1] + "." + parts[2],     // padding
		parts[0] + "." + parts[1] + "." + parts[2] + "!", // bad base64 in signature
		"eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",          // payload not JSON
		b64(t, "string header") + "." + parts[1] + "." + parts[2],
		base64.RawURLEncoding.EncodeToString([]byte("{")) + "." + parts[1] + "." + parts[2],
		strings.Repeat("A", 10000),
		strings.Repeat("a.", 5000) + "a",
		"\x00\x01\x02",
		"ťöķéñ.ťöķéñ.ťöķéñ",
	}
	for i, tok := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) { expectReject(t, tk, tok, "") })
	}
	// Most of those are plainly malformed.
	for _, tok := range []string{"", "a.b", "a.b.c.d", "Bearer " + good, good + "."} {
		expectReject(t, tk, tok, reasonMalformed)
	}
}

func TestTamperedPayload(t *testing.T) {
	tk := newTestTokens(t)
	tok, _, err := tk.Issue(42, "user", "fam", 0)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	var pl map[string]any
	decodeSeg(t, parts[1], &pl)
	for _, mut := range []func(map[string]any){
		func(m map[string]any) { m["role"] = "super_admin" },
		func(m map[string]any) { m["sub"] = "1" },
		func(m map[string]any) { m["exp"] = m["exp"].(float64) + 3600 },
		func(m map[string]any) { m["sid"] = "other-family" },
	} {
		m := map[string]any{}
		for k, v := range pl {
			m[k] = v
		}
		mut(m)
		expectReject(t, tk, parts[0]+"."+b64(t, m)+"."+parts[2], reasonSignature)
	}
	// Tampered header (typ dropped) and flipped signature bit.
	expectReject(t, tk, b64(t, map[string]any{"alg": "HS256"})+"."+parts[1]+"."+parts[2], reasonSignature)
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	expectReject(t, tk, parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(sig), reasonSignature)
}

func TestErrorsNeverContainToken(t *testing.T) {
	tk := newTestTokens(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	expired := goodClaims()
	expired["exp"] = testNow.Add(-time.Hour).Unix()
	wrongIss := goodClaims()
	wrongIss["iss"] = "evil"
	refresh := goodClaims()
	refresh["token_use"] = "refresh"
	badSub := goodClaims()
	badSub["sub"] = "not-a-number-but-long"
	good := hs256(t, goodClaims())
	toks := []string{
		hs256(t, expired), hs256(t, wrongIss), hs256(t, refresh), hs256(t, badSub),
		sign(t, jwt.SigningMethodRS256, key, nil, goodClaims()),
		sign(t, jwt.SigningMethodHS512, testSecret, nil, goodClaims()),
		sign(t, jwt.SigningMethodHS256, []byte("ffffffffffffffffffffffffffffffff"), nil, goodClaims()),
		b64(t, map[string]any{"alg": "none"}) + "." + b64(t, goodClaims()) + ".",
		good + "x", "garbage-token-value", "Bearer " + good,
	}
	for _, tok := range toks {
		_, err := tk.Verify(tok)
		if err == nil {
			t.Fatalf("accepted %q", tok)
		}
		assertNoLeak(t, err, tok)
		// Nothing that names a claim value either.
		for _, s := range []string{"evil", "refresh", "not-a-number", "jti-0123456789abcdef"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q echoes token content %q", err, s)
			}
		}
	}
}

func TestTokenErrorIs(t *testing.T) {
	var err error = &TokenError{Reason: reasonExpired}
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatal("TokenError does not match ErrInvalidToken")
	}
	if errors.Is(errors.New("x"), ErrInvalidToken) {
		t.Fatal("unrelated error matches ErrInvalidToken")
	}
	if got := err.Error(); got != "invalid token: token expired" {
		t.Errorf("Error() = %q", got)
	}
}

func BenchmarkVerify(b *testing.B) {
	tk := newTestTokens(b)
	tok, _, err := tk.Issue(42, "admin", "", 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tk.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
