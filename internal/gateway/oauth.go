package gateway

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
)

// PRMPath is the well-known path of the OAuth Protected Resource Metadata
// (RFC 9728); it is also served suffixed with the endpoint path.
const PRMPath = "/.well-known/oauth-protected-resource"

// newBearer combines the API keys with the JWT verifier of auth.jwt.
func newBearer(keys *authn.APIKeys, a config.Auth, logger *slog.Logger) (Authenticator, error) {
	j := a.JWT
	v, err := authn.NewJWTVerifier(authn.JWTOptions{
		Issuer:          j.Issuer,
		Audience:        j.Audience,
		JWKSURL:         j.JWKSURL,
		Algorithms:      j.Algorithms,
		RolesClaim:      j.RolesClaim,
		Leeway:          j.Leeway,
		RequireTypATJWT: j.RequireTypATJWT,
		JWKSRefresh:     j.JWKSRefresh,
		Fetcher:         authn.FetcherOptions{AllowLoopback: j.InsecureAllowHTTPLoopbackIssuer},
		Logger:          logger.With("component", "jwt"),
	})
	if err != nil {
		return nil, fmt.Errorf("configure auth.jwt: %w", err)
	}
	return authn.Bearer{APIKeys: keys, JWT: v}, nil
}

// prmURL is where the metadata for the endpoint is published: the
// resource identifier's origin, the well-known path, the endpoint path.
func prmURL(j *config.JWT) string {
	u, err := url.Parse(j.Audience)
	if err != nil {
		return "" // Validate refuses such an audience
	}
	return u.Scheme + "://" + u.Host + PRMPath + EndpointPath
}

// challenge is the WWW-Authenticate value of a 401: with auth.jwt it tells
// an OAuth client where to discover the authorization server (RFC 9728 §5.1)
// and which scopes to ask for (RFC 6750 §3).
func challenge(a config.Auth) string {
	if a.JWT == nil {
		return `Bearer realm="mcpgate"`
	}
	c := fmt.Sprintf(`Bearer resource_metadata=%q`, prmURL(a.JWT))
	if len(a.JWT.ScopesSupported) > 0 {
		c += fmt.Sprintf(`, scope=%q`, strings.Join(a.JWT.ScopesSupported, " "))
	}
	return c
}

// handlePRM serves the protected resource metadata at the root well-known
// path and the one suffixed with the endpoint path, without authentication
// (it is public, and the host guard still applies). Nothing without auth.jwt.
func handlePRM(mux *http.ServeMux, a config.Auth) {
	if a.JWT == nil {
		return
	}
	h := auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:               a.JWT.Audience,
		AuthorizationServers:   []string{a.JWT.Issuer},
		ScopesSupported:        a.JWT.ScopesSupported,
		BearerMethodsSupported: []string{"header"},
	})
	mux.Handle(PRMPath, h)
	mux.Handle(PRMPath+EndpointPath, h)
}
