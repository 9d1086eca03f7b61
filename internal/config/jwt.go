package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// JWT configures mcpgate as an OAuth 2.1 resource server accepting bearer
// JWT access tokens signed by one issuer whose keys are fetched from its JWKS.
type JWT struct {
	// Issuer is the authorization server's issuer identifier; a token's
	// `iss` must equal it exactly.
	Issuer string `yaml:"issuer"`
	// Audience is mcpgate's own resource identifier (RFC 8707), e.g.
	// https://mcp.example.com/mcp; a token's `aud` must contain it.
	Audience string `yaml:"audience"`
	// JWKSURL is where the issuer publishes its signing keys.
	JWKSURL string `yaml:"jwks_url"`
	// Algorithms lists the accepted signature algorithms.
	Algorithms []string `yaml:"algorithms"`
	// RolesClaim names the claim holding the principal's roles.
	RolesClaim string `yaml:"roles_claim"`
	// Leeway is the clock skew allowed on exp and nbf. A pointer so that an
	// explicit 0 (no skew at all) is told apart from absent (the default).
	Leeway *time.Duration `yaml:"leeway"`
	// RequireTypATJWT requires the header typ "at+jwt" (RFC 9068).
	RequireTypATJWT bool `yaml:"require_typ_at_jwt"`
	// ScopesSupported is published in the protected resource metadata and
	// in the 401 challenge.
	ScopesSupported []string `yaml:"scopes_supported"`
	// JWKSRefresh is how often the JWKS is refetched to pick up rotation.
	JWKSRefresh time.Duration `yaml:"jwks_refresh"`
	// InsecureAllowHTTPLoopbackIssuer allows http:// URLs on loopback hosts
	// (issuer, jwks_url and audience), for tests and local development only.
	InsecureAllowHTTPLoopbackIssuer bool `yaml:"insecure_allow_http_loopback_issuer"`
}

// JWT defaults.
const (
	DefaultJWTRolesClaim  = "roles"
	DefaultJWTLeeway      = 30 * time.Second
	DefaultJWTJWKSRefresh = 5 * time.Minute
	maxJWTLeeway          = 5 * time.Minute
	minJWTJWKSRefresh     = 30 * time.Second
	maxJWTJWKSRefresh     = 24 * time.Hour
)

// DefaultJWTAlgorithms are the algorithms accepted when none are configured.
var DefaultJWTAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// jwtAlgorithms are the asymmetric algorithms mcpgate can verify.
var jwtAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

func (j *JWT) applyDefaults() {
	if j == nil {
		return
	}
	if len(j.Algorithms) == 0 {
		j.Algorithms = append([]string(nil), DefaultJWTAlgorithms...)
	}
	setDefault(&j.RolesClaim, DefaultJWTRolesClaim)
	if j.Leeway == nil {
		d := DefaultJWTLeeway
		j.Leeway = &d
	}
	setDefault(&j.JWKSRefresh, DefaultJWTJWKSRefresh)
}

func (c *Config) validateJWT(add addFunc) {
	j := c.Auth.JWT
	if j == nil {
		return
	}
	if c.Auth.InsecureDisableAuth {
		add("auth.insecure_disable_auth", "is set together with auth.jwt; remove one")
	}
	httpOK := j.InsecureAllowHTTPLoopbackIssuer
	if err := checkJWTURL(j.Issuer, httpOK); err != nil {
		add("auth.jwt.issuer", "%v", err)
	}
	if err := checkJWTURL(j.JWKSURL, httpOK); err != nil {
		add("auth.jwt.jwks_url", "%v", err)
	}
	if err := checkJWTURL(j.Audience, httpOK); err != nil {
		add("auth.jwt.audience", "%v (mcpgate's own resource identifier, e.g. https://mcp.example.com/mcp)", err)
	}
	seen := map[string]bool{}
	for i, a := range j.Algorithms {
		key := fmt.Sprintf("auth.jwt.algorithms[%d]", i)
		switch {
		case strings.EqualFold(a, "none"):
			add(key, "\"none\" is never accepted: tokens must be signed")
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			add(key, "%q is an HMAC algorithm: a resource server verifies with the issuer's public keys, never a shared secret", a)
		case !jwtAlgorithms[a]:
			add(key, "unknown algorithm %q (known: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)", a)
		case seen[a]:
			add(key, "duplicate algorithm %q", a)
		}
		seen[a] = true
	}
	if j.RolesClaim == "" || strings.ContainsAny(j.RolesClaim, " \t") {
		add("auth.jwt.roles_claim", "%q must be a claim name", j.RolesClaim)
	}
	if j.Leeway != nil && (*j.Leeway < 0 || *j.Leeway > maxJWTLeeway) {
		add("auth.jwt.leeway", "must be from 0 to %v", maxJWTLeeway)
	}
	if j.JWKSRefresh < minJWTJWKSRefresh || j.JWKSRefresh > maxJWTJWKSRefresh {
		add("auth.jwt.jwks_refresh", "must be from %v to %v", minJWTJWKSRefresh, maxJWTJWKSRefresh)
	}
	for i, s := range j.ScopesSupported {
		key := fmt.Sprintf("auth.jwt.scopes_supported[%d]", i)
		switch {
		case !validScopeToken(s):
			add(key, "%q is not a scope (RFC 6749: printable ASCII without space, \" or \\)", s)
		case s == "offline_access":
			add(key, "offline_access must not be advertised by a resource server")
		}
	}
}

// checkJWTURL accepts an absolute https URL without query or fragment, or
// http on a loopback host when allowed.
func checkJWTURL(s string, httpLoopbackOK bool) error {
	if s == "" {
		return fmt.Errorf("required")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute URL without query or fragment", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if !httpLoopbackOK {
			return fmt.Errorf("%q must be https", s)
		}
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("%q: plain http is allowed only on a loopback host", s)
		}
		return nil
	default:
		return fmt.Errorf("%q must be https", s)
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// validScopeToken is RFC 6749 §3.3: 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
