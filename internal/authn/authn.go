// Package authn decides who a caller is. Every method (API keys, OAuth
// bearer JWTs, opaque OAuth tokens by introspection, mTLS client
// certificates) yields the same Principal, carried in the request context to
// every later stage.
package authn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Method says how a principal authenticated.
type Method string

const (
	MethodAPIKey Method = "api_key"
	// MethodOAuth is an OAuth 2.1 access token, a JWT or an opaque token
	// checked by introspection alike: both name the same authorization
	// server's subject, so one subject is one principal whichever form its
	// token takes.
	MethodOAuth Method = "oauth"
	// MethodMTLS is a verified TLS client certificate mapped by auth.mtls.
	MethodMTLS Method = "mtls"
	// MethodNone is the anonymous principal of a listener whose operator
	// disabled authentication (loopback only).
	MethodNone Method = "none"
)

// Principal is an authenticated caller.
type Principal struct {
	ID    string
	Roles []string
	// Scopes are the OAuth scopes the token grants (MethodOAuth only).
	Scopes []string
	Method Method
	// Expires is when the credential stops being accepted (a token's exp
	// plus the configured leeway, a client certificate's NotAfter); zero
	// if it does not expire (API keys). A long-lived event stream ends
	// then: it must not go on delivering to a credential past its life.
	Expires time.Time
}

// LogValue keeps log lines uniform wherever a principal is logged.
func (p *Principal) LogValue() slog.Value {
	if p == nil {
		return slog.StringValue("unauthenticated")
	}
	return slog.GroupValue(
		slog.String("id", p.ID),
		slog.String("method", string(p.Method)),
		slog.Any("roles", p.Roles),
		slog.Any("scopes", p.Scopes),
	)
}

// SessionOwner is the string a legacy session is bound to: a session created
// by one principal cannot be used by any other.
func (p *Principal) SessionOwner() string {
	return string(p.Method) + ":" + p.ID
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Failure reasons. They are safe to show a client and are used as metric
// and log labels.
var (
	ErrNoCredentials      = errors.New("no credentials: send Authorization: Bearer <key>")
	ErrMalformed          = errors.New("malformed Authorization header: expected exactly one \"Bearer <token>\"")
	ErrUnknownCredentials = errors.New("invalid credentials")
)

// maxTokenBytes caps a bearer token before anything looks at it.
const maxTokenBytes = 8 << 10

// BearerToken extracts the token from the request's one Authorization header.
// Only the header counts: a token in the query string or a cookie is never read.
func BearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", ErrNoCredentials
	}
	if len(values) > 1 {
		return "", ErrMalformed
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > maxTokenBytes ||
		strings.ContainsAny(token, " \t") {
		return "", ErrMalformed
	}
	return token, nil
}
