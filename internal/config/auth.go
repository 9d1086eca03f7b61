package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/secret"
)

// Introspection accepts opaque OAuth access tokens by asking the
// authorization server about each one (RFC 7662). Results are cached by the
// token's SHA-256, never by the token itself.
type Introspection struct {
	// URL is the authorization server's introspection endpoint (https).
	URL string `yaml:"url"`
	// ClientID and ClientSecret are mcpgate's own credentials at the
	// authorization server, sent as HTTP Basic (client_secret_basic). The
	// secret must be a reference ({secret: env:NAME|file:PATH}).
	ClientID     string `yaml:"client_id"`
	ClientSecret *Value `yaml:"client_secret"`
	// Audience is mcpgate's own resource identifier (RFC 8707); the
	// response's `aud` must be present and contain it.
	Audience string `yaml:"audience"`
	// Issuer, when set, must equal the response's `iss` if it carries one.
	// It is required without auth.jwt: the protected resource metadata
	// names it as the authorization server.
	Issuer string `yaml:"issuer"`
	// RolesClaim names the response member holding the principal's roles.
	RolesClaim string `yaml:"roles_claim"`
	// Leeway is the clock skew allowed on exp and nbf; nil means the
	// default, and 0 is a valid setting.
	Leeway *time.Duration `yaml:"leeway"`
	// CacheTTL bounds how long an active answer is reused (never past the
	// token's exp).
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheSize bounds the number of cached answers (least recently used
	// evicted first).
	CacheSize int `yaml:"cache_size"`
	// MaxConcurrent bounds the introspection requests in flight at once.
	MaxConcurrent int `yaml:"max_concurrent"`
	// InsecureAllowHTTPLoopback allows an http:// url (and audience and
	// issuer) on a loopback host, for tests and local development only.
	InsecureAllowHTTPLoopback bool `yaml:"insecure_allow_http_loopback"`
}

// Introspection defaults and bounds.
const (
	DefaultIntrospectionCacheTTL      = time.Minute
	DefaultIntrospectionCacheSize     = 10000
	DefaultIntrospectionMaxConcurrent = 8
	maxIntrospectionCacheTTL          = 10 * time.Minute
	maxIntrospectionCacheSize         = 1000000
	maxIntrospectionConcurrent        = 256
)

// MTLS maps verified client certificates (listen.tls.client_ca) to principals.
type MTLS struct {
	Principals []MTLSPrincipal `yaml:"principals"`
}

// MTLSPrincipal is one principal and the certificate field value naming it.
type MTLSPrincipal struct {
	ID    string    `yaml:"id"`
	Roles []string  `yaml:"roles"`
	Match MTLSMatch `yaml:"match"`
}

// MTLSMatch names exactly one certificate field and its exact value: the
// subject common name or a DNS, URI or email subject alternative name.
type MTLSMatch struct {
	CommonName string `yaml:"common_name"`
	DNS        string `yaml:"dns"`
	URI        string `yaml:"uri"`
	Email      string `yaml:"email"`
}

// Field returns the one field set, its kind and value; kind is "" when none
// or more than one is set.
func (m MTLSMatch) Field() (kind, value string) {
	n := 0
	for _, f := range []struct{ kind, value string }{
		{"common_name", m.CommonName}, {"dns", m.DNS}, {"uri", m.URI}, {"email", m.Email},
	} {
		if f.value != "" {
			n++
			kind, value = f.kind, f.value
		}
	}
	if n != 1 {
		return "", ""
	}
	return kind, value
}

// LeewayOr returns *d, or def when d is nil (unset).
func LeewayOr(d *time.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return *d
}

func (i *Introspection) applyDefaults() {
	if i == nil {
		return
	}
	setDefault(&i.RolesClaim, DefaultJWTRolesClaim)
	if i.Leeway == nil {
		d := DefaultJWTLeeway
		i.Leeway = &d
	}
	setDefault(&i.CacheTTL, DefaultIntrospectionCacheTTL)
	setDefault(&i.CacheSize, DefaultIntrospectionCacheSize)
	setDefault(&i.MaxConcurrent, DefaultIntrospectionMaxConcurrent)
}

// resolvePaths makes a relative file: client secret relative to dir.
func (i *Introspection) resolvePaths(dir string) {
	if i == nil || i.ClientSecret == nil {
		return
	}
	if kind, target, err := secret.ParseRef(i.ClientSecret.Secret); err == nil && kind == secret.KindFile {
		absIn(dir, &target)
		i.ClientSecret.Secret = secret.KindFile + ":" + target
	}
}

// validateAuthMethods checks auth.introspection, auth.mtls and
// auth.required_scopes.
func (c *Config) validateAuthMethods(add addFunc) {
	a := c.Auth
	if a.InsecureDisableAuth && (a.Introspection != nil || a.MTLS != nil) {
		add("auth.insecure_disable_auth", "is set together with auth.introspection or auth.mtls; remove one")
	}
	c.validateIntrospection(add)
	c.validateMTLS(add)
	for i, s := range a.RequiredScopes {
		key := fmt.Sprintf("auth.required_scopes[%d]", i)
		switch {
		case !validScopeToken(s):
			add(key, "%q is not a scope (RFC 6749: printable ASCII without space, \" or \\)", s)
		case s == "offline_access":
			add(key, "offline_access must not be required by a resource server")
		}
	}
	if len(a.RequiredScopes) > 0 && a.JWT == nil && a.Introspection == nil {
		add("auth.required_scopes", "applies to OAuth tokens only: configure auth.jwt or auth.introspection")
	}
}

func (c *Config) validateIntrospection(add addFunc) {
	in := c.Auth.Introspection
	if in == nil {
		return
	}
	const k = "auth.introspection"
	httpOK := in.InsecureAllowHTTPLoopback
	if err := checkJWTURL(in.URL, httpOK); err != nil {
		add(k+".url", "%v", err)
	}
	if in.ClientID == "" || strings.ContainsAny(in.ClientID, ":\r\n") {
		add(k+".client_id", "required: mcpgate's client id at the authorization server (no colon or line break)")
	}
	switch {
	case in.ClientSecret == nil:
		add(k+".client_secret", "required: {secret: env:NAME|file:PATH}")
	case !in.ClientSecret.IsSecret():
		add(k+".client_secret", "must be a secret reference {secret: env:NAME|file:PATH}, not a literal")
	default:
		if _, _, err := secret.ParseRef(in.ClientSecret.Secret); err != nil {
			add(k+".client_secret.secret", "%v", err)
		}
	}
	if err := checkJWTURL(in.Audience, httpOK); err != nil {
		add(k+".audience", "%v (mcpgate's own resource identifier, e.g. https://mcp.example.com/mcp)", err)
	} else if j := c.Auth.JWT; j != nil && j.Audience != in.Audience {
		add(k+".audience", "%q differs from auth.jwt.audience %q: both name mcpgate itself", in.Audience, j.Audience)
	}
	switch {
	case in.Issuer != "":
		if err := checkJWTURL(in.Issuer, httpOK); err != nil {
			add(k+".issuer", "%v", err)
		}
	case c.Auth.JWT == nil:
		add(k+".issuer", "required without auth.jwt: the protected resource metadata names it as the authorization server")
	}
	if in.RolesClaim == "" || strings.ContainsAny(in.RolesClaim, " \t") {
		add(k+".roles_claim", "%q must be a claim name", in.RolesClaim)
	}
	if in.Leeway != nil && (*in.Leeway < 0 || *in.Leeway > maxJWTLeeway) {
		add(k+".leeway", "must be from 0 to %v", maxJWTLeeway)
	}
	if in.CacheTTL <= 0 || in.CacheTTL > maxIntrospectionCacheTTL {
		add(k+".cache_ttl", "must be positive and at most %v", maxIntrospectionCacheTTL)
	}
	if in.CacheSize <= 0 || in.CacheSize > maxIntrospectionCacheSize {
		add(k+".cache_size", "must be from 1 to %d", maxIntrospectionCacheSize)
	}
	if in.MaxConcurrent <= 0 || in.MaxConcurrent > maxIntrospectionConcurrent {
		add(k+".max_concurrent", "must be from 1 to %d", maxIntrospectionConcurrent)
	}
}

func (c *Config) validateMTLS(add addFunc) {
	m := c.Auth.MTLS
	if m == nil {
		return
	}
	if c.Listen.TLS == nil || c.Listen.TLS.ClientCA == "" {
		add("auth.mtls", "requires listen.tls.client_ca: only certificates verified against it are mapped")
	}
	if len(m.Principals) == 0 {
		add("auth.mtls.principals", "required: at least one {id, roles, match}")
	}
	ids := map[string]bool{}
	// An id names one principal: rate limits, sessions and policy rules
	// key on it, so a certificate must not share an API key's.
	keyIDs := map[string]bool{}
	for _, k := range c.Auth.APIKeys {
		keyIDs[k.ID] = true
	}
	matchers := map[string]string{}
	for i, p := range m.Principals {
		key := fmt.Sprintf("auth.mtls.principals[%d]", i)
		switch {
		case !idPattern.MatchString(p.ID):
			add(key+".id", "%q must be 1-64 characters of letters, digits and _.@- ", p.ID)
		case ids[p.ID]:
			add(key+".id", "duplicate id %q", p.ID)
		case keyIDs[p.ID]:
			add(key+".id", "id %q is also an API key's id (auth.api_keys): one id, one principal", p.ID)
		}
		ids[p.ID] = true
		for j, r := range p.Roles {
			if !idPattern.MatchString(r) {
				add(fmt.Sprintf("%s.roles[%d]", key, j), "%q is not a valid role name", r)
			}
		}
		kind, value := p.Match.Field()
		if kind == "" {
			add(key+".match", "set exactly one of common_name, dns, uri, email")
			continue
		}
		if strings.TrimSpace(value) != value || strings.ContainsAny(value, "*\x00") {
			add(key+".match."+kind, "%q must be an exact value (no surrounding space, no wildcard)", value)
		}
		if kind == "dns" {
			value = strings.ToLower(value) // DNS names compare case-insensitively
		}
		if other, dup := matchers[kind+"="+value]; dup {
			add(key+".match."+kind, "%q is already mapped to %q", value, other)
		} else {
			matchers[kind+"="+value] = p.ID
		}
	}
}
