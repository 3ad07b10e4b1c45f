// Package auth holds wataomi's authentication primitives.
//
// Today it contains the issuer and verifier of our own access tokens
// (PRODUCT.md §3.2.1 "Access token (ours)", §9.1 S1): short-lived HS256 JWTs
// with header typ "at+jwt" and claims sub, role, jti, sid, iat, exp, iss, aud
// and token_use "access". See [Tokens].
//
// Later it will also hold Casdoor (RS256) token verification, refresh-token
// families with rotation and reuse detection, jti/sid revocation and API
// tokens.
//
// Tokens are secrets: nothing in this package logs them, and no error it
// returns ever contains a token or part of one.
package auth
