package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer   = "https://issuer.example.com"
	testAudience = "https://mcp.example.com/mcp"
)

// testKey is a signing key with its kid.
type testKey struct {
	kid    string
	signer crypto.Signer
}

func newRSAKey(t testing.TB, kid string) testKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid, k}
}

func newECKey(t testing.TB, kid string) testKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid, k}
}

func newEdKey(t testing.TB, kid string) testKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid, k}
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkJSON is the public JWK of k, as an issuer publishes it.
func (k testKey) jwk() map[string]string {
	switch pub := k.signer.Public().(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": k.kid, "use": "sig", "alg": "RS256",
			"n": enc(pub.N.Bytes()), "e": enc(big.NewInt(int64(pub.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, _ := pub.Bytes()
		return map[string]string{"kty": "EC", "kid": k.kid, "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": k.kid, "crv": "Ed25519", "x": enc(pub)}
	}
	panic("unknown key type")
}

func (k testKey) method() jwt.SigningMethod {
	switch k.signer.(type) {
	case *rsa.PrivateKey:
		return jwt.SigningMethodRS256
	case *ecdsa.PrivateKey:
		return jwt.SigningMethodES256
	default:
		return jwt.SigningMethodEdDSA
	}
}

// issuer is a real JWKS endpoint on an httptest TLS server; it counts the
// fetches it serves and can rotate its keys.
type issuer struct {
	srv      *httptest.Server
	mu       sync.Mutex
	keys     []testKey
	requests atomic.Int64
}

func newIssuer(t testing.TB, keys ...testKey) *issuer {
	is := &issuer{keys: keys}
	is.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.requests.Add(1)
		is.mu.Lock()
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for _, k := range is.keys {
			set.Keys = append(set.Keys, k.jwk())
		}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) rotate(keys ...testKey) {
	is.mu.Lock()
	is.keys = keys
	is.mu.Unlock()
}

func (is *issuer) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(is.srv.Certificate())
	return pool
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newVerifier(t testing.TB, is *issuer, clk *clock, mod func(*JWTOptions)) *JWTVerifier {
	t.Helper()
	o := JWTOptions{
		Issuer:      testIssuer,
		Audience:    testAudience,
		JWKSURL:     is.srv.URL + "/jwks.json",
		Algorithms:  []string{"RS256", "ES256", "EdDSA"},
		RolesClaim:  "roles",
		Leeway:      30 * time.Second,
		JWKSRefresh: 5 * time.Minute,
		// https to a loopback test server: the loopback opt-in plus trust
		// in the test server's certificate.
		Fetcher: FetcherOptions{AllowLoopback: true, RootCAs: is.roots()},
		Now:     clk.Now,
	}
	if mod != nil {
		mod(&o)
	}
	v, err := NewJWTVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func baseClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":   testIssuer,
		"aud":   []string{"https://other.example.com", testAudience},
		"sub":   "alice@example.com",
		"exp":   now.Add(10 * time.Minute).Unix(),
		"nbf":   now.Add(-time.Minute).Unix(),
		"iat":   now.Add(-time.Minute).Unix(),
		"roles": []string{"reader", "writer"},
		"scope": "tools:call tools:list",
	}
}

func sign(t testing.TB, k testKey, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method(), claims)
	tok.Header["kid"] = k.kid
	tok.Header["typ"] = "at+jwt"
	for h, v := range header {
		if v == nil {
			delete(tok.Header, h)
		} else {
			tok.Header[h] = v
		}
	}
	s, err := tok.SignedString(k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bearerRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

func TestJWTVerifier(t *testing.T) {
	rsaKey, ecKey, edKey := newRSAKey(t, "rsa-1"), newECKey(t, "ec-1"), newEdKey(t, "ed-1")
	is := newIssuer(t, rsaKey, ecKey, edKey)
	clk := &clock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	now := clk.Now()
	v := newVerifier(t, is, clk, nil)
	strict := newVerifier(t, is, clk, func(o *JWTOptions) { o.RequireTypATJWT = true })

	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := baseClaims(now)
		mod(c)
		return c
	}
	rsaPub := x509.MarshalPKCS1PublicKey(&rsaKey.signer.(*rsa.PrivateKey).PublicKey)
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, baseClaims(now))
	confused.Header["kid"] = "rsa-1"
	hs256WithPublicKey, err := confused.SignedString(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, baseClaims(now))
	none.Header["kid"] = "rsa-1"
	algNone, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA := newRSAKey(t, "rsa-1") // same kid, key the issuer never published

	tests := []struct {
		name       string
		v          *JWTVerifier
		token      string
		wantReason string // "" means accepted
		wantScopes []string
		wantRoles  []string
	}{
		{name: "RS256 accepted", token: sign(t, rsaKey, baseClaims(now), nil),
			wantRoles: []string{"reader", "writer"}, wantScopes: []string{"tools:call", "tools:list"}},
		{name: "ES256 accepted, scp array, roles string", token: sign(t, ecKey, with(func(c jwt.MapClaims) {
			delete(c, "scope")
			c["scp"] = []string{"a", "b"}
			c["roles"] = "admin ops"
		}), nil), wantRoles: []string{"admin", "ops"}, wantScopes: []string{"a", "b"}},
		{name: "EdDSA accepted, single aud string", token: sign(t, edKey, with(func(c jwt.MapClaims) {
			c["aud"] = testAudience
		}), nil), wantRoles: []string{"reader", "writer"}, wantScopes: []string{"tools:call", "tools:list"}},
		{name: "expired within leeway accepted", token: sign(t, rsaKey, with(func(c jwt.MapClaims) {
			c["exp"] = now.Add(-20 * time.Second).Unix()
		}), nil), wantRoles: []string{"reader", "writer"}, wantScopes: []string{"tools:call", "tools:list"}},
		{name: "typ at+jwt when required", v: strict, token: sign(t, rsaKey, baseClaims(now), nil),
			wantRoles: []string{"reader", "writer"}, wantScopes: []string{"tools:call", "tools:list"}},

		{name: "wrong iss", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example.com" }), nil), wantReason: "wrong issuer"},
		{name: "iss with trailing slash", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { c["iss"] = testIssuer + "/" }), nil), wantReason: "wrong issuer"},
		{name: "wrong aud", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { c["aud"] = "https://other.example.com" }), nil), wantReason: "wrong audience"},
		{name: "no aud", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { delete(c, "aud") }), nil), wantReason: "missing required claim"},
		{name: "expired beyond leeway", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-31 * time.Second).Unix() }), nil), wantReason: "expired"},
		{name: "no exp", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { delete(c, "exp") }), nil), wantReason: "missing required claim"},
		{name: "nbf in the future", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() }), nil), wantReason: "not valid yet"},
		{name: "nbf just beyond leeway", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(31 * time.Second).Unix() }), nil), wantReason: "not valid yet"},
		{name: "alg none", token: algNone, wantReason: "malformed"},
		{name: "alg none with a signature", token: algNone + "c2ln", wantReason: "bad signature or algorithm"},
		{name: "HS256 signed with the RSA public key", token: hs256WithPublicKey, wantReason: "bad signature or algorithm"},
		{name: "signed by an unpublished key with a known kid", token: sign(t, otherRSA, baseClaims(now), nil), wantReason: "bad signature or algorithm"},
		{name: "ES256 header on the RSA kid", token: sign(t, ecKey, baseClaims(now), map[string]any{"kid": "rsa-1"}), wantReason: "signing key does not match alg"},
		{name: "unknown kid", token: sign(t, rsaKey, baseClaims(now), map[string]any{"kid": "nope"}), wantReason: "unknown signing key"},
		{name: "no kid", token: sign(t, rsaKey, baseClaims(now), map[string]any{"kid": nil}), wantReason: "unknown signing key"},
		{name: "typ mismatch when required", v: strict, token: sign(t, rsaKey, baseClaims(now), map[string]any{"typ": "JWT"}), wantReason: "typ is not at+jwt"},
		{name: "no sub", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { delete(c, "sub") }), nil), wantReason: "sub missing"},
		{name: "roles of the wrong type", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { c["roles"] = []any{"a", 1} }), nil), wantReason: "roles claim"},
		{name: "tampered payload", token: func() string {
			parts := strings.Split(sign(t, rsaKey, baseClaims(now), nil), ".")
			parts[1] = enc([]byte(`{"iss":"` + testIssuer + `","aud":"` + testAudience + `","sub":"root","exp":9999999999}`))
			return strings.Join(parts, ".")
		}(), wantReason: "bad signature or algorithm"},
		{name: "oversized token", token: sign(t, rsaKey, with(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", maxTokenBytes) }), nil), wantReason: "malformed"},
		{name: "not a JWT", token: "a.b", wantReason: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vv := tt.v
			if vv == nil {
				vv = v
			}
			p, err := vv.Verify(context.Background(), tt.token)
			if tt.wantReason != "" {
				if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.wantReason) {
					t.Fatalf("Verify error = %v, want invalid token: %s", err, tt.wantReason)
				}
				if p != nil {
					t.Fatal("principal returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.ID != "alice@example.com" || p.Method != MethodOAuth || !slices.Equal(p.Roles, tt.wantRoles) ||
				!slices.Equal(p.Scopes, tt.wantScopes) || p.SessionOwner() != "oauth:alice@example.com" {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
	// The unknown kids above may refetch at most once (the clock stood still).
	if n := is.requests.Load(); n > 2 {
		t.Errorf("JWKS fetched %d times for one clock instant, want at most 2", n)
	}
}

func TestJWTOversizedTokenIs401ThroughBearer(t *testing.T) {
	rsaKey := newRSAKey(t, "k")
	is := newIssuer(t, rsaKey)
	clk := &clock{now: time.Now()}
	b := Bearer{JWT: newVerifier(t, is, clk, nil)}
	tok := sign(t, rsaKey, jwt.MapClaims{"pad": strings.Repeat("x", maxTokenBytes)}, nil)
	if _, err := b.Authenticate(bearerRequest(tok)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized token: %v, want ErrMalformed", err)
	}
	if is.requests.Load() != 0 {
		t.Fatal("an oversized token made the verifier fetch the JWKS")
	}
}

func TestJWKSRotation(t *testing.T) {
	oldKey, newKey := newRSAKey(t, "2026-01"), newECKey(t, "2026-02")
	is := newIssuer(t, oldKey)
	clk := &clock{now: time.Now()}
	v := newVerifier(t, is, clk, nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, oldKey, baseClaims(clk.Now()), nil)); err != nil {
		t.Fatalf("old key: %v", err)
	}
	is.rotate(newKey)
	clk.Advance(UnknownKidInterval)
	if _, err := v.Verify(ctx, sign(t, newKey, baseClaims(clk.Now()), nil)); err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}
	if n := is.requests.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (initial, one refetch for the new kid)", n)
	}
	// The old key is gone from the set, and so from the cache.
	if _, err := v.Verify(ctx, sign(t, oldKey, baseClaims(clk.Now()), nil)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("retired key: %v", err)
	}
	// Past jwks_refresh, a known kid also triggers a refetch.
	clk.Advance(5 * time.Minute)
	if _, err := v.Verify(ctx, sign(t, newKey, baseClaims(clk.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	if n := is.requests.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times, want 3 (periodic refresh)", n)
	}
}

func TestJWKSUnknownKidFlood(t *testing.T) {
	key := newRSAKey(t, "good")
	is := newIssuer(t, key)
	clk := &clock{now: time.Now()}
	v := newVerifier(t, is, clk, nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, key, baseClaims(clk.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(UnknownKidInterval) // the next unknown kid may refetch once
	before := is.requests.Load()
	var wg sync.WaitGroup
	for i := range 1000 {
		tok := sign(t, key, baseClaims(clk.Now()), map[string]any{"kid": fmt.Sprintf("random-%d-%x", i, i*7919)})
		wg.Go(func() {
			if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("unknown kid: %v", err)
			}
		})
	}
	wg.Wait()
	if n := is.requests.Load() - before; n > 1 {
		t.Fatalf("1000 unknown kids caused %d JWKS fetches within the interval, want at most 1", n)
	}
	// The good key still works, without another fetch.
	if _, err := v.Verify(ctx, sign(t, key, baseClaims(clk.Now()), nil)); err != nil {
		t.Fatal(err)
	}
}

func TestJWKSFetchFailureKeepsKeys(t *testing.T) {
	key := newRSAKey(t, "k")
	is := newIssuer(t, key)
	clk := &clock{now: time.Now()}
	v := newVerifier(t, is, clk, nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, key, baseClaims(clk.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	is.srv.Close()
	clk.Advance(10 * time.Minute)
	if _, err := v.Verify(ctx, sign(t, key, baseClaims(clk.Now()), nil)); err != nil {
		t.Fatalf("issuer down, known key: %v", err)
	}
}

func TestNewJWTVerifierRefusesSymmetricAlgorithms(t *testing.T) {
	for _, alg := range []string{"HS256", "none", "XX1"} {
		_, err := NewJWTVerifier(JWTOptions{Issuer: testIssuer, Audience: testAudience,
			JWKSURL: "https://issuer.example.com/jwks", Algorithms: []string{alg}})
		if err == nil {
			t.Errorf("algorithm %s accepted", alg)
		}
	}
}

func TestBearerRouting(t *testing.T) {
	key := newRSAKey(t, "k")
	is := newIssuer(t, key)
	clk := &clock{now: time.Now()}
	apiKey, _ := NewKey()
	b := Bearer{APIKeys: newKeys(t, apiKey), JWT: newVerifier(t, is, clk, nil)}
	tests := []struct {
		name   string
		token  string
		method Method
		err    error
	}{
		{"api key", apiKey, MethodAPIKey, nil},
		{"jwt", sign(t, key, baseClaims(clk.Now()), nil), MethodOAuth, nil},
		{"wrong api key", "mgk_nope", "", ErrUnknownCredentials},
		{"bad jwt", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "", ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := b.Authenticate(bearerRequest(tt.token))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || p.Method != tt.method {
				t.Fatalf("principal %+v, err %v", p, err)
			}
		})
	}
	// Only JWT configured: an API key is refused without a lookup.
	if _, err := (Bearer{JWT: b.JWT}).Authenticate(bearerRequest(apiKey)); !errors.Is(err, ErrUnknownCredentials) {
		t.Fatalf("api key without api keys configured: %v", err)
	}
}

func FuzzLooksLikeJWT(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
	f.Add("mgk_abc.def.ghi")
	f.Add("a..b")
	f.Add("a.b.c.d")
	f.Add("a+b.c/d.e=")
	f.Fuzz(func(t *testing.T, tok string) {
		got := LooksLikeJWT(tok)
		if got && strings.HasPrefix(tok, KeyPrefix) {
			t.Fatalf("API key %q routed to the JWT verifier", tok)
		}
		if !got {
			return
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("%q has %d segments", tok, len(parts))
		}
		for _, p := range parts {
			if p == "" || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
				t.Fatalf("segment %q of %q is not base64url", p, tok)
			}
		}
	})
}
