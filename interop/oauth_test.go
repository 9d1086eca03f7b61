package interop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// authorizationServer is a real loopback OAuth authorization server as far
// as discovery goes: RFC 8414 metadata (and its OIDC twin) and a JWKS with
// one ES256 key that the test signs tokens with.
type authorizationServer struct {
	URL string
	key *ecdsa.PrivateKey
}

func newAuthorizationServer(t *testing.T) *authorizationServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	as := &authorizationServer{key: key}
	pt, _ := key.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "kid": "interop-1", "use": "sig", "alg": "ES256", "crv": "P-256", "x": enc(pt[1:33]), "y": enc(pt[33:]),
	}}})
	mux := http.NewServeMux()
	metadata := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                as.URL,
			"authorization_endpoint":                as.URL + "/authorize",
			"token_endpoint":                        as.URL + "/token",
			"jwks_uri":                              as.URL + "/jwks.json",
			"response_types_supported":              []string{"code"},
			"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
			"code_challenge_methods_supported":      []string{"S256"},
			"token_endpoint_auth_methods_supported": []string{"none"},
			"scopes_supported":                      []string{"mcp:tools", "mcp:resources"},
		})
	}
	mux.HandleFunc("/.well-known/oauth-authorization-server", metadata)
	mux.HandleFunc("/.well-known/openid-configuration", metadata)
	mux.HandleFunc("/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	as.URL = srv.URL
	return as
}

func (as *authorizationServer) token(t *testing.T, audience, scope string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": as.URL, "aud": audience, "sub": "interop-user",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		"roles": []string{"user"}, "scope": scope,
	})
	tok.Header["kid"] = "interop-1"
	s, err := tok.SignedString(as.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// oauthDiscovery is what clients/oauth.mjs prints.
type oauthDiscovery struct {
	Challenge struct {
		ResourceMetadataURL string `json:"resourceMetadataUrl"`
		Scope               string `json:"scope"`
		Error               any    `json:"error"`
	} `json:"challenge"`
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorizationServers"`
	ScopesSupported      []string `json:"scopesSupported"`
	ASIssuer             string   `json:"asIssuer"`
	ASJWKSURI            string   `json:"asJwksUri"`
	Forbidden            struct {
		Status              int    `json:"status"`
		Error               string `json:"error"`
		Scope               string `json:"scope"`
		ResourceMetadataURL string `json:"resourceMetadataUrl"`
	} `json:"forbidden"`
	Echo string `json:"echo"`
}

// TestTypeScriptOAuthDiscovery has the TypeScript SDK's own OAuth helpers,
// an implementation independent of ours, discover mcpgate's authorization
// server from its 401 and metadata, parse its 403 insufficient_scope, and
// call a tool with a JWT from that server.
func TestTypeScriptOAuthDiscovery(t *testing.T) {
	as := newAuthorizationServer(t)
	addr := freeAddr(t)
	resource := "http://" + addr + "/mcp"
	cfgPath := filepath.Join(t.TempDir(), "mcpgate.yaml")
	cfg := fmt.Sprintf(`
auth:
  jwt:
    issuer: %s
    audience: %s
    jwks_url: %s/jwks.json
    scopes_supported: [mcp:tools, mcp:resources]
    insecure_allow_http_loopback_issuer: true
  required_scopes: [mcp:tools]
upstreams:
  demo: {builtin: demo, namespace: ""}
policy:
  rules:
    - {name: users-all, roles: [user], allow: {tools: ["*"]}}
`, as.URL, resource, as.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGatewayProcess(t, mcpgateBin, cfgPath, addr)

	out, err := node(t, 2*time.Minute, []string{
		"MCPGATE_URL=" + g.URL,
		"MCPGATE_TOKEN=" + as.token(t, resource, "mcp:tools mcp:resources"),
		"MCPGATE_LOW_SCOPE_TOKEN=" + as.token(t, resource, "mcp:resources"),
	}, "clients/oauth.mjs")
	if err != nil {
		t.Fatalf("clients/oauth.mjs: %v\nstdout: %s", err, out)
	}
	t.Logf("clients/oauth.mjs: %s", strings.TrimSpace(out))
	var d oauthDiscovery
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &d); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	prm := "http://" + addr + "/.well-known/oauth-protected-resource/mcp"
	if d.Challenge.ResourceMetadataURL != prm || d.Challenge.Scope != "mcp:tools mcp:resources" || d.Challenge.Error != nil {
		t.Errorf("401 challenge as the SDK read it: %+v, want resource_metadata %s, scope \"mcp:tools mcp:resources\", no error", d.Challenge, prm)
	}
	if d.Resource != resource || !slices.Equal(d.AuthorizationServers, []string{as.URL}) ||
		!slices.Equal(d.ScopesSupported, []string{"mcp:tools", "mcp:resources"}) {
		t.Errorf("protected resource metadata as the SDK read it: resource %q, servers %v, scopes %v", d.Resource, d.AuthorizationServers, d.ScopesSupported)
	}
	if d.ASIssuer != as.URL || d.ASJWKSURI != as.URL+"/jwks.json" {
		t.Errorf("authorization server found: issuer %q jwks %q, want %s", d.ASIssuer, d.ASJWKSURI, as.URL)
	}
	if d.Forbidden.Status != http.StatusForbidden || d.Forbidden.Error != "insufficient_scope" || d.Forbidden.Scope != "mcp:tools" ||
		d.Forbidden.ResourceMetadataURL != prm {
		t.Errorf("403 as the SDK read it: %+v", d.Forbidden)
	}
	if !strings.Contains(d.Echo, "hello with an OAuth token") {
		t.Errorf("echo with the token returned %q", d.Echo)
	}
}
