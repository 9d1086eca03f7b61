package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
)

// oauthIssuer is a real JWKS endpoint with one ES256 key. It is plain http
// on loopback, which the gateway accepts only through
// auth.jwt.insecure_allow_http_loopback_issuer (the https path is tested in
// internal/authn).
type oauthIssuer struct {
	URL      string
	key      *ecdsa.PrivateKey
	requests atomic.Int64
}

func newOAuthIssuer(t *testing.T) *oauthIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &oauthIssuer{key: key}
	pt, _ := key.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "kid": "k1", "use": "sig", "alg": "ES256", "crv": "P-256", "x": enc(pt[1:33]), "y": enc(pt[33:]),
	}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	is.URL = srv.URL
	return is
}

const testResource = "http://127.0.0.1/mcp"

func (is *oauthIssuer) token(t *testing.T, aud string) string {
	t.Helper()
	return is.tokenExpiring(t, aud, time.Now().Add(time.Hour))
}

// tokenExpiring is token with exp set to exp (whole seconds).
func (is *oauthIssuer) tokenExpiring(t *testing.T, aud string, exp time.Time) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": is.URL, "aud": aud, "sub": "user-42",
		"exp": exp.Unix(), "iat": now.Unix(),
		"roles": []string{"reader"}, "scope": "mcp:tools",
	})
	tok.Header["kid"] = "k1"
	tok.Header["typ"] = "at+jwt"
	s, err := tok.SignedString(is.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jwtGateway(t *testing.T, is *oauthIssuer, edits ...func(*config.JWT)) *testGateway {
	return newTestGateway(t, func(c *config.Config) {
		c.Auth.JWT = &config.JWT{
			Issuer:                          is.URL,
			Audience:                        testResource,
			JWKSURL:                         is.URL + "/jwks.json",
			RequireTypATJWT:                 true,
			ScopesSupported:                 []string{"mcp:tools", "mcp:resources"},
			InsecureAllowHTTPLoopbackIssuer: true,
		}
		for _, edit := range edits {
			edit(c.Auth.JWT)
		}
		c.ApplyDefaults()
	})
}

func TestJWTThroughGateway(t *testing.T) {
	is := newOAuthIssuer(t)
	tg := jwtGateway(t, is)
	call := modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"hi"}`)

	resp, b := tg.post(t, is.token(t, testResource), call, modernHeaders("tools/call", "echo"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("JWT call: status %d: %s", resp.StatusCode, b)
	}
	if r := decodeRPC(t, b); r.Error != nil || !strings.Contains(string(r.Result), "hi") {
		t.Fatalf("echo result %s", b)
	}
	// API keys still work beside JWT.
	if resp, b := tg.post(t, tg.keyA, call, modernHeaders("tools/call", "echo")); resp.StatusCode != http.StatusOK {
		t.Fatalf("API key call: status %d: %s", resp.StatusCode, b)
	}

	const prm = `resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp", scope="mcp:tools mcp:resources"`
	for _, tt := range []struct{ name, token, wantChallenge string }{
		{"no token", "", "Bearer " + prm},
		{"token for another resource", is.token(t, "https://other.example.com/mcp"), `Bearer error="invalid_token", ` + prm},
		{"garbage JWT", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", `Bearer error="invalid_token", ` + prm},
		{"wrong API key", "mgk_nope", `Bearer error="invalid_token", ` + prm},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := tg.post(t, tt.token, call, modernHeaders("tools/call", "echo"))
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if got, wantChallenge := resp.Header.Get("WWW-Authenticate"), tt.wantChallenge; got != wantChallenge {
				t.Fatalf("WWW-Authenticate = %s, want %s", got, wantChallenge)
			}
		})
	}
	calls := 0
	for _, m := range tg.reachedMethods() {
		if m == "tools/call" {
			calls++
		}
	}
	if calls != 2 {
		t.Fatalf("%d tools/call reached the server, want the 2 authenticated ones", calls)
	}
	if n := is.requests.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
}

func TestProtectedResourceMetadata(t *testing.T) {
	is := newOAuthIssuer(t)
	tg := jwtGateway(t, is)
	base := strings.TrimSuffix(tg.URL, EndpointPath)
	for _, path := range []string{PRMPath, PRMPath + EndpointPath} {
		t.Run(path, func(t *testing.T) {
			resp, err := http.Get(base + path) // no credentials: the metadata is public
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			var prm struct {
				Resource               string   `json:"resource"`
				AuthorizationServers   []string `json:"authorization_servers"`
				ScopesSupported        []string `json:"scopes_supported"`
				BearerMethodsSupported []string `json:"bearer_methods_supported"`
			}
			if err := json.Unmarshal(b, &prm); err != nil {
				t.Fatal(err)
			}
			if prm.Resource != testResource || !slices.Equal(prm.AuthorizationServers, []string{is.URL}) ||
				!slices.Equal(prm.ScopesSupported, []string{"mcp:tools", "mcp:resources"}) ||
				!slices.Equal(prm.BearerMethodsSupported, []string{"header"}) {
				t.Fatalf("metadata %s", b)
			}
		})
	}
	// The Host guard still applies to the metadata.
	req, _ := http.NewRequest(http.MethodGet, base+PRMPath, nil)
	req.Host = "evil.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Host: status %d, want 403", resp.StatusCode)
	}
}

func TestNoMetadataWithoutJWT(t *testing.T) {
	tg := newTestGateway(t, nil)
	resp, err := http.Get(strings.TrimSuffix(tg.URL, EndpointPath) + PRMPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	c := challenge(config.Auth{})
	if got := c.unauthorized(authn.ErrNoCredentials); got != `Bearer realm="mcpgate"` {
		t.Fatalf("challenge without jwt: %s", got)
	}
	if got := c.unauthorized(authn.ErrUnknownCredentials); got != `Bearer realm="mcpgate", error="invalid_token"` {
		t.Fatalf("challenge without jwt, wrong key: %s", got)
	}
}

// TestStreamsEndWhenTheTokenExpires: a long-lived event stream opened with
// a token ends when the gateway stops accepting that token (exp plus the
// leeway, none here): a legacy GET stream and a 2026-07-28
// subscriptions/listen stream. A stream opened with an API key, which does
// not expire, stays open. The lower bound is exact, the upper generous: a
// slow machine only ends a stream later.
func TestStreamsEndWhenTheTokenExpires(t *testing.T) {
	is := newOAuthIssuer(t)
	tg := jwtGateway(t, is, func(j *config.JWT) {
		none := time.Duration(0)
		j.Leeway = &none
	})
	exp := time.Now().Add(3 * time.Second).Truncate(time.Second)
	token := is.tokenExpiring(t, testResource, exp)

	// stream opens a stream and reports when its body ends.
	stream := func(name string, req *http.Request) <-chan time.Time {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s: status %d: %s", name, resp.StatusCode, b)
		}
		ended := make(chan time.Time, 1)
		go func() {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ended <- time.Now()
		}()
		return ended
	}
	get := func(key, sid string) *http.Request {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tg.URL, nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+key)
		inSession(sid)(req)
		return req
	}
	legacy := stream("legacy GET stream", get(token, legacyInit(t, tg, token)))
	apiKey := stream("API key GET stream", get(tg.keyA, legacyInit(t, tg, tg.keyA)))
	listenReq, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, tg.URL,
		strings.NewReader(modernBody(7, "subscriptions/listen", `"notifications":{"resourceSubscriptions":["test://watched-resource"]}`)))
	listenReq.Header.Set("Content-Type", "application/json")
	listenReq.Header.Set("Accept", "application/json, text/event-stream")
	listenReq.Header.Set("Authorization", "Bearer "+token)
	modernHeaders("subscriptions/listen", "")(listenReq)
	listen := stream("listen stream", listenReq)

	for name, ended := range map[string]<-chan time.Time{"legacy GET stream": legacy, "listen stream": listen} {
		select {
		case at := <-ended:
			if at.Before(exp) {
				t.Errorf("%s ended at %v, before the token expired at %v", name, at, exp)
			}
		case <-time.After(time.Until(exp) + 15*time.Second):
			t.Errorf("%s still open 15s after its token expired", name)
		}
	}
	select {
	case at := <-apiKey:
		t.Fatalf("the API key's stream ended at %v: only expiring credentials end streams", at)
	case <-time.After(300 * time.Millisecond):
	}
}
