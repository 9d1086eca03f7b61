package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is every bearer JWT failure. The wrapped reason (expired,
// wrong audience, ...) is from a fixed set and safe to show a client; the
// token itself is never logged or echoed.
var ErrInvalidToken = errors.New("invalid token")

// invalidToken wraps ErrInvalidToken with a client-safe reason.
func invalidToken(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, reason) }

// JWTOptions configure a JWTVerifier.
type JWTOptions struct {
	Issuer   string // exact match on iss
	Audience string // aud must contain it (RFC 8707)
	JWKSURL  string
	// Algorithms is the allowlist; only asymmetric algorithms work, as keys
	// come from a JWKS as public keys.
	Algorithms      []string
	RolesClaim      string
	Leeway          time.Duration
	RequireTypATJWT bool
	// JWKSRefresh is the age after which the JWKS is refetched.
	JWKSRefresh time.Duration
	// UnknownKidInterval is the least time between fetches; 0 means the
	// package's UnknownKidInterval.
	UnknownKidInterval time.Duration
	Fetcher            FetcherOptions
	// Now is the clock; nil means time.Now. Tests inject one.
	Now    func() time.Time
	Logger *slog.Logger
}

// JWTVerifier authenticates callers by a bearer JWT access token.
type JWTVerifier struct {
	opts   JWTOptions
	parser *jwt.Parser
	jwks   *jwksCache
}

// NewJWTVerifier returns a verifier; keys are fetched on first use.
func NewJWTVerifier(o JWTOptions) (*JWTVerifier, error) {
	if o.Issuer == "" || o.Audience == "" || o.JWKSURL == "" || len(o.Algorithms) == 0 {
		return nil, errors.New("jwt verifier: issuer, audience, jwks_url and algorithms are required")
	}
	for _, a := range o.Algorithms {
		m := jwt.GetSigningMethod(a)
		if m == nil || a == "none" || strings.HasPrefix(a, "HS") {
			return nil, fmt.Errorf("jwt verifier: algorithm %q is not accepted", a)
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RolesClaim == "" {
		o.RolesClaim = "roles"
	}
	if o.UnknownKidInterval <= 0 {
		o.UnknownKidInterval = UnknownKidInterval
	}
	if o.JWKSRefresh < o.UnknownKidInterval {
		o.JWKSRefresh = o.UnknownKidInterval
	}
	fetcher := NewFetcher(o.Fetcher)
	if _, err := fetcher.checkURL(o.JWKSURL); err != nil {
		return nil, fmt.Errorf("jwt verifier: jwks_url: %w", err)
	}
	v := &JWTVerifier{
		opts: o,
		parser: jwt.NewParser(
			jwt.WithValidMethods(o.Algorithms),
			jwt.WithIssuer(o.Issuer),
			jwt.WithAudience(o.Audience),
			jwt.WithLeeway(o.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(o.Now),
		),
		jwks: &jwksCache{
			url:         o.JWKSURL,
			fetch:       fetcher.Get,
			now:         o.Now,
			refresh:     o.JWKSRefresh,
			minInterval: o.UnknownKidInterval,
			logger:      o.Logger,
		},
	}
	return v, nil
}

// Authenticate checks the request's bearer JWT.
func (v *JWTVerifier) Authenticate(r *http.Request) (*Principal, error) {
	token, err := BearerToken(r)
	if err != nil {
		return nil, err
	}
	return v.Verify(r.Context(), token)
}

// Verify checks one token and returns its principal.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (*Principal, error) {
	if len(token) > maxTokenBytes || !LooksLikeJWT(token) {
		return nil, invalidToken("malformed")
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if v.opts.RequireTypATJWT {
			typ, _ := t.Header["typ"].(string)
			if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
				return nil, errTyp
			}
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errUnknownKey
		}
		k, err := v.jwks.key(ctx, kid)
		if err != nil {
			return nil, err
		}
		if k.alg != "" && k.alg != t.Method.Alg() {
			return nil, errKeyAlg
		}
		return k.key, nil
	})
	if err != nil {
		return nil, invalidToken(reason(err))
	}
	p, err := principalFromClaims(claims, v.opts.RolesClaim)
	if err != nil {
		return nil, err
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		p.Expires = exp.Add(v.opts.Leeway) // exp is required: the parser checked it
	}
	return p, nil
}

var (
	errTyp    = errors.New("typ is not at+jwt")
	errKeyAlg = errors.New("key is for another algorithm")
)

// reason maps a verification failure to a client-safe word or two.
func reason(err error) string {
	switch {
	case errors.Is(err, errTyp):
		return "typ is not at+jwt"
	case errors.Is(err, errUnknownKey):
		return "unknown signing key"
	case errors.Is(err, errKeyAlg):
		return "signing key does not match alg"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing required claim"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrInvalidKeyType):
		return "bad signature or algorithm"
	default:
		return "unverifiable"
	}
}

// maxSubjectBytes bounds the principal id taken from sub.
const maxSubjectBytes = 256

// maxClaimValues bounds the roles or scopes taken from one token.
const maxClaimValues = 64

func principalFromClaims(c jwt.MapClaims, rolesClaim string) (*Principal, error) {
	sub, _ := c["sub"].(string)
	if sub == "" || len(sub) > maxSubjectBytes || !utf8.ValidString(sub) ||
		strings.IndexFunc(sub, unicode.IsControl) >= 0 {
		return nil, invalidToken("sub missing or not a plain string")
	}
	roles, ok := stringList(c[rolesClaim])
	if !ok {
		return nil, invalidToken("roles claim is not a string or list of strings")
	}
	var scopes []string
	if s, present := c["scope"]; present {
		scopes, ok = stringList(s)
	} else {
		scopes, ok = stringList(c["scp"])
	}
	if !ok {
		return nil, invalidToken("scope claim is not a string or list of strings")
	}
	return &Principal{ID: sub, Roles: roles, Scopes: scopes, Method: MethodOAuth}, nil
}

// stringList reads a claim that is absent, a space-separated string, or an
// array of strings.
func stringList(v any) ([]string, bool) {
	var out []string
	switch v := v.(type) {
	case nil:
		return nil, true
	case string:
		out = strings.Fields(v)
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok || s == "" || strings.ContainsAny(s, " \t") {
				return nil, false
			}
			out = append(out, s)
		}
	default:
		return nil, false
	}
	if len(out) > maxClaimValues {
		return nil, false
	}
	return out, true
}

// LooksLikeJWT reports whether token has a JWS compact shape: three
// non-empty base64url segments separated by dots. An mcpgate API key never
// does (its prefix has an underscore and it has no dot).
func LooksLikeJWT(token string) bool {
	if strings.HasPrefix(token, KeyPrefix) || strings.Count(token, ".") != 2 {
		return false
	}
	for seg := range strings.SplitSeq(token, ".") {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
