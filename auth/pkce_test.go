package auth

import (
	"regexp"
	"testing"
)

var (
	b64urlRe     = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	unreservedRe = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
)

func TestChallengeRFC7636(t *testing.T) {
	tests := []struct {
		name, verifier, want string
	}{
		// RFC 7636 appendix B.
		{"rfc7636 appendix B", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
		// echo -n abc | sha256sum, base64url without padding.
		{"abc", "abc", "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Challenge(tt.verifier); got != tt.want {
				t.Fatalf("Challenge(%q) = %q, want %q", tt.verifier, got, tt.want)
			}
		})
	}
}

func TestRandomPKCEValues(t *testing.T) {
	tests := []struct {
		name   string
		gen    func() string
		length int
		re     *regexp.Regexp
	}{
		{"state", NewState, 43, b64urlRe},
		{"verifier", NewVerifier, VerifierLen, unreservedRe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]bool{}
			for i := 0; i < 200; i++ {
				v := tt.gen()
				if len(v) != tt.length {
					t.Fatalf("len(%q) = %d, want %d", v, len(v), tt.length)
				}
				if !tt.re.MatchString(v) {
					t.Fatalf("%q has characters outside %s", v, tt.re)
				}
				if seen[v] {
					t.Fatalf("duplicate value %q", v)
				}
				seen[v] = true
			}
		})
	}
}

func TestChallengeOfNewVerifier(t *testing.T) {
	v := NewVerifier()
	c := Challenge(v)
	if len(c) != 43 || !b64urlRe.MatchString(c) {
		t.Fatalf("Challenge = %q, want 43 base64url characters", c)
	}
	if c == Challenge(NewVerifier()) {
		t.Fatal("two verifiers gave the same challenge")
	}
}
