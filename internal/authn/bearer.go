package authn

import (
	"errors"
	"net/http"
	"slices"
	"strings"
)

// Bearer is the gateway's authenticator: it routes a bearer token by its
// shape, and without an Authorization header falls back to the verified
// client certificate. Any of its parts may be nil (not configured).
//
// Routing: an "mgk_" token is an API key; a JWT-shaped token goes to the
// JWT verifier, or to introspection when only that is configured; any other
// token is first compared with the API keys (locally, in constant time) and
// then, when it matches none, introspected. So an API key never reaches the
// authorization server.
//
// Precedence: an Authorization header always decides, even on a connection
// with a mapped client certificate; a bad header is refused, never rescued
// by the certificate. Only a request without the header is mapped by its
// certificate.
type Bearer struct {
	APIKeys       *APIKeys
	JWT           *JWTVerifier
	Introspection *Introspector
	MTLS          *MTLS
	// RequiredScopes must all be granted to an OAuth principal (JWT or
	// introspection); API keys and certificates carry no scopes and are
	// authorized by their roles alone.
	RequiredScopes []string
}

// InsufficientScopeError is a valid OAuth token lacking a required scope
// (403). It carries the principal, so the refusal is audited under it.
type InsufficientScopeError struct {
	Principal *Principal
	Missing   []string
}

func (e *InsufficientScopeError) Error() string {
	return "insufficient scope: the token lacks " + strings.Join(e.Missing, " ")
}

// Authenticate decides who sent r.
func (b Bearer) Authenticate(r *http.Request) (*Principal, error) {
	token, err := BearerToken(r)
	if errors.Is(err, ErrNoCredentials) && b.MTLS != nil {
		return b.MTLS.Authenticate(r)
	}
	if err != nil {
		return nil, err
	}
	p, err := b.token(r, token)
	if err != nil {
		return nil, err
	}
	if p.Method == MethodOAuth {
		if missing := missingScopes(p.Scopes, b.RequiredScopes); len(missing) > 0 {
			return nil, &InsufficientScopeError{Principal: p, Missing: missing}
		}
	}
	return p, nil
}

func (b Bearer) token(r *http.Request, token string) (*Principal, error) {
	switch {
	case strings.HasPrefix(token, KeyPrefix):
		if b.APIKeys == nil {
			return nil, ErrUnknownCredentials
		}
		return b.APIKeys.lookup(token)
	case LooksLikeJWT(token) && b.JWT != nil:
		return b.JWT.Verify(r.Context(), token)
	case LooksLikeJWT(token) && b.Introspection != nil:
		return b.Introspection.Verify(r.Context(), token)
	case LooksLikeJWT(token):
		return nil, ErrUnknownCredentials
	}
	if b.APIKeys != nil {
		p, err := b.APIKeys.lookup(token)
		if err == nil || b.Introspection == nil {
			return p, err
		}
	}
	if b.Introspection == nil {
		return nil, ErrUnknownCredentials
	}
	return b.Introspection.Verify(r.Context(), token)
}

// missingScopes returns the required scopes not granted, in required order.
// Scopes are compared exactly: OAuth defines no hierarchy between scope
// strings, and mcpgate invents none.
func missingScopes(granted, required []string) []string {
	var missing []string
	for _, s := range required {
		if !slices.Contains(granted, s) {
			missing = append(missing, s)
		}
	}
	return missing
}
