package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/transport"
)

// PRMPath is the well-known path of the OAuth Protected Resource Metadata
// (RFC 9728); it is also served suffixed with the endpoint path.
const PRMPath = "/.well-known/oauth-protected-resource"

// Metric labels of the authentication refusals that are not a 401. They are
// the gateway's own: telemetry counts any label it is given.
const (
	authInsufficientScope    = "insufficient_scope" // mcpgate_auth_failures_total{reason}
	authUnavailable          = "unavailable"
	refusedInsufficientScope = "insufficient_scope" // mcpgate_refusals_total{reason}
	refusedAuthUnavailable   = "auth_unavailable"
)

// newBearer combines the API keys with the OAuth verifiers (auth.jwt,
// auth.introspection) and the certificate mapping (auth.mtls).
func newBearer(keys *authn.APIKeys, a config.Auth, logger *slog.Logger) (Authenticator, error) {
	b := authn.Bearer{APIKeys: keys, RequiredScopes: a.RequiredScopes}
	if j := a.JWT; j != nil {
		v, err := authn.NewJWTVerifier(authn.JWTOptions{
			Issuer:          j.Issuer,
			Audience:        j.Audience,
			JWKSURL:         j.JWKSURL,
			Algorithms:      j.Algorithms,
			RolesClaim:      j.RolesClaim,
			Leeway:          config.LeewayOr(j.Leeway, config.DefaultJWTLeeway),
			RequireTypATJWT: j.RequireTypATJWT,
			JWKSRefresh:     j.JWKSRefresh,
			Fetcher:         authn.FetcherOptions{AllowLoopback: j.InsecureAllowHTTPLoopbackIssuer},
			Logger:          logger.With("component", "jwt"),
		})
		if err != nil {
			return nil, fmt.Errorf("configure auth.jwt: %w", err)
		}
		b.JWT = v
	}
	if in := a.Introspection; in != nil {
		if in.ClientSecret == nil {
			return nil, errors.New("configure auth.introspection: client_secret is required")
		}
		sec, err := in.ClientSecret.Resolve()
		if err != nil {
			return nil, fmt.Errorf("configure auth.introspection: client_secret: %w", err)
		}
		v, err := authn.NewIntrospector(authn.IntrospectionOptions{
			URL:           in.URL,
			ClientID:      in.ClientID,
			ClientSecret:  sec,
			Audience:      in.Audience,
			Issuer:        in.Issuer,
			RolesClaim:    in.RolesClaim,
			Leeway:        config.LeewayOr(in.Leeway, config.DefaultJWTLeeway),
			CacheTTL:      in.CacheTTL,
			CacheSize:     in.CacheSize,
			MaxConcurrent: in.MaxConcurrent,
			Fetcher:       authn.FetcherOptions{AllowLoopback: in.InsecureAllowHTTPLoopback},
			Logger:        logger.With("component", "introspection"),
		})
		if err != nil {
			return nil, fmt.Errorf("configure auth.introspection: %w", err)
		}
		b.Introspection = v
	}
	if m := a.MTLS; m != nil {
		ms := make([]authn.CertMapping, 0, len(m.Principals))
		for _, p := range m.Principals {
			field, value := p.Match.Field()
			ms = append(ms, authn.CertMapping{ID: p.ID, Roles: p.Roles, Field: field, Value: value})
		}
		v, err := authn.NewMTLS(ms)
		if err != nil {
			return nil, fmt.Errorf("configure auth.mtls: %w", err)
		}
		b.MTLS = v
	}
	return b, nil
}

// oauthResource returns mcpgate's resource identifier and its authorization
// server, from auth.jwt or else auth.introspection; ok is false when neither
// OAuth method is configured.
func oauthResource(a config.Auth) (resource, issuer string, ok bool) {
	switch {
	case a.JWT != nil:
		return a.JWT.Audience, a.JWT.Issuer, true
	case a.Introspection != nil:
		return a.Introspection.Audience, a.Introspection.Issuer, true
	}
	return "", "", false
}

// advertisedScopes is what a client is told to ask for: the required scopes
// first (a token without them is refused), then the other supported ones.
func advertisedScopes(a config.Auth) []string {
	scopes := slices.Clone(a.RequiredScopes)
	if a.JWT != nil {
		for _, s := range a.JWT.ScopesSupported {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	return scopes
}

// prmURL is where the metadata for the endpoint is published: the
// resource identifier's origin, the well-known path, the endpoint path.
func prmURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return "" // Validate refuses such an audience
	}
	return u.Scheme + "://" + u.Host + PRMPath + EndpointPath
}

// challenger writes the WWW-Authenticate values: with OAuth configured they
// tell a client where to discover the authorization server (RFC 9728 §5.1)
// and which scopes to ask for (RFC 6750 §3).
type challenger struct {
	prm      string // "": no OAuth, a plain realm challenge
	scopes   string // space-separated, for a 401
	required string // space-separated, for a 403
}

// challenge builds the challenger of a's configuration.
func challenge(a config.Auth) challenger {
	resource, _, ok := oauthResource(a)
	if !ok {
		return challenger{}
	}
	return challenger{
		prm:      prmURL(resource),
		scopes:   strings.Join(advertisedScopes(a), " "),
		required: strings.Join(a.RequiredScopes, " "),
	}
}

// unauthorized is the challenge of a 401 for err. RFC 6750 §3.1: a request
// without credentials gets no error code; a token that was presented and
// refused gets invalid_token.
func (c challenger) unauthorized(err error) string {
	var parts []string
	if c.prm == "" {
		parts = append(parts, `realm="mcpgate"`)
	}
	if errors.Is(err, authn.ErrInvalidToken) || errors.Is(err, authn.ErrUnknownCredentials) {
		parts = append(parts, `error="invalid_token"`)
	}
	if c.prm != "" {
		parts = append(parts, fmt.Sprintf(`resource_metadata=%q`, c.prm))
		if c.scopes != "" {
			parts = append(parts, fmt.Sprintf(`scope=%q`, c.scopes))
		}
	}
	return "Bearer " + strings.Join(parts, ", ")
}

// forbidden is the challenge of a 403 for a token lacking a required scope:
// every required scope at once (MCP: not one at a time).
func (c challenger) forbidden() string {
	return fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, resource_metadata=%q`, c.required, c.prm)
}

// refuseAuth answers a failed authentication: 403 for a valid token lacking
// a scope, 503 when the authorization server could not be asked, else 401.
// Every one is logged, audited and counted like any other refusal, and what
// the client reads is the authn error's own client-safe text.
func (f *front) refuseAuth(w http.ResponseWriter, r *http.Request, err error) {
	var scopeErr *authn.InsufficientScopeError
	switch {
	case errors.As(err, &scopeErr):
		w.Header().Set("WWW-Authenticate", f.challenge.forbidden())
		f.metrics.AuthFailure(authInsufficientScope)
		f.reject(w, r, scopeErr.Principal, refusal{http.StatusForbidden, transport.CodeInvalidRequest, refusedInsufficientScope,
			"forbidden: " + err.Error()})
	case errors.Is(err, authn.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		f.metrics.AuthFailure(authUnavailable)
		f.reject(w, r, nil, refusal{http.StatusServiceUnavailable, transport.CodeInternalError, refusedAuthUnavailable,
			"service unavailable: " + err.Error()})
	default:
		w.Header().Set("WWW-Authenticate", f.challenge.unauthorized(err))
		f.metrics.AuthFailure(authFailureReason(err))
		f.reject(w, r, nil, refusal{http.StatusUnauthorized, transport.CodeInvalidRequest, telemetry.RefusedUnauthenticated,
			"unauthorized: " + err.Error()})
	}
}

// handlePRM serves the protected resource metadata at the root well-known
// path and the one suffixed with the endpoint path, without authentication
// (it is public, and the host guard still applies). Nothing without OAuth.
func handlePRM(mux *http.ServeMux, a config.Auth) {
	resource, issuer, ok := oauthResource(a)
	if !ok {
		return
	}
	h := auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:               resource,
		AuthorizationServers:   []string{issuer},
		ScopesSupported:        advertisedScopes(a),
		BearerMethodsSupported: []string{"header"},
	})
	mux.Handle(PRMPath, h)
	mux.Handle(PRMPath+EndpointPath, h)
}
