package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
)

// sign signs claims (over the issuer's defaults, a nil value deletes one)
// with the issuer's key, header fields likewise.
func (is *oauthIssuer) sign(t *testing.T, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": is.URL, "aud": testResource, "sub": "user-42",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		"roles": []string{"reader"}, "scope": "mcp:tools",
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = "k1"
	tok.Header["typ"] = "at+jwt"
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(is.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// counterValue is the value of a counter series with the given reason label.
func counterValue(t *testing.T, g *Gateway, name, reason string) float64 {
	t.Helper()
	families, err := g.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestJWTMatrixThroughGateway: every bad token is a 401 with the challenge
// that tells the client what to do; a good token lacking a required scope
// is a 403 insufficient_scope, audited and counted.
func TestJWTMatrixThroughGateway(t *testing.T) {
	is := newOAuthIssuer(t)
	keyPath, logPath, _ := auditFiles(t)
	tg := newTestGateway(t, func(c *config.Config) {
		c.Audit.Path, c.Audit.SigningKey = logPath, keyPath
		zero := time.Duration(0)
		c.Auth.JWT = &config.JWT{
			Issuer:                          is.URL,
			Audience:                        testResource,
			JWKSURL:                         is.URL + "/jwks.json",
			RequireTypATJWT:                 true,
			Leeway:                          &zero,
			ScopesSupported:                 []string{"mcp:tools", "mcp:resources"},
			InsecureAllowHTTPLoopbackIssuer: true,
		}
		c.Auth.RequiredScopes = []string{"mcp:tools"}
		c.ApplyDefaults()
	})
	call := modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"hi"}`)
	now := time.Now()
	const prm = `resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp", scope="mcp:tools mcp:resources"`
	const noCreds = `Bearer ` + prm
	const invalid = `Bearer error="invalid_token", ` + prm

	pub, err := x509.MarshalPKIXPublicKey(&is.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": is.URL, "aud": testResource, "sub": "x", "exp": now.Add(time.Hour).Unix()})
	hs.Header["kid"] = "k1"
	hs256WithPublicKey, _ := hs.SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": is.URL, "aud": testResource, "sub": "x", "exp": now.Add(time.Hour).Unix()})
	none.Header["kid"] = "k1"
	algNone, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	parts := strings.Split(is.sign(t, nil, nil), ".")
	parts[1] = strings.TrimRight(jsonB64(t, map[string]any{"iss": is.URL, "aud": testResource, "sub": "admin", "exp": now.Add(time.Hour).Unix(), "roles": []string{"admin"}, "scope": "mcp:tools"}), "=")
	tampered := strings.Join(parts, ".")
	valid := is.sign(t, nil, nil)

	tests := []struct {
		name      string
		token     string
		query     bool // the token goes in the query string, not the header
		status    int
		challenge string
		body      string // the JSON-RPC error message contains it
	}{
		{name: "valid", token: valid, status: http.StatusOK},
		{name: "wrong aud", token: is.sign(t, jwt.MapClaims{"aud": "https://other.example.com/mcp"}, nil), status: 401, challenge: invalid, body: "wrong audience"},
		{name: "wrong iss", token: is.sign(t, jwt.MapClaims{"iss": "https://evil.example.com"}, nil), status: 401, challenge: invalid, body: "wrong issuer"},
		{name: "expired", token: is.sign(t, jwt.MapClaims{"exp": now.Add(-2 * time.Second).Unix()}, nil), status: 401, challenge: invalid, body: "expired"},
		{name: "not yet valid", token: is.sign(t, jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()}, nil), status: 401, challenge: invalid, body: "not valid yet"},
		{name: "unknown kid", token: is.sign(t, nil, map[string]any{"kid": "k9"}), status: 401, challenge: invalid, body: "unknown signing key"},
		{name: "alg none", token: algNone, status: 401, challenge: invalid, body: "invalid"},
		{name: "HS256 signed with the public key", token: hs256WithPublicKey, status: 401, challenge: invalid, body: "bad signature or algorithm"},
		{name: "tampered payload", token: tampered, status: 401, challenge: invalid, body: "bad signature or algorithm"},
		{name: "oversized", token: is.sign(t, jwt.MapClaims{"pad": strings.Repeat("x", 9<<10)}, nil), status: 401, challenge: noCreds, body: "malformed Authorization header"},
		{name: "token in the query string is ignored", token: valid, query: true, status: 401, challenge: noCreds, body: "no credentials"},
		{name: "missing required scope", token: is.sign(t, jwt.MapClaims{"scope": "mcp:resources"}, nil), status: http.StatusForbidden,
			challenge: `Bearer error="insufficient_scope", scope="mcp:tools", resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp"`,
			body:      "insufficient scope: the token lacks mcp:tools"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, target := tt.token, tg.URL
			if tt.query {
				header, target = "", tg.URL+"?access_token="+url.QueryEscape(tt.token)
			}
			resp, b := request(t, http.MethodPost, target, header, call, modernHeaders("tools/call", "echo"))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Fatalf("WWW-Authenticate = %s\nwant %s", got, tt.challenge)
			}
			r := decodeRPC(t, b)
			if tt.status == http.StatusOK {
				if r.Error != nil || !strings.Contains(string(r.Result), "hi") {
					t.Fatalf("call result %s", b)
				}
				return
			}
			if r.Error == nil || !strings.Contains(r.Error.Message, tt.body) {
				t.Fatalf("error body %s, want it to name %q", b, tt.body)
			}
			if strings.Contains(string(b), tt.token) {
				t.Fatal("the answer echoes the token")
			}
		})
	}
	if got := counterValue(t, tg.Gateway, "mcpgate_auth_failures_total", authInsufficientScope); got != 1 {
		t.Errorf("auth failures{insufficient_scope} = %v, want 1", got)
	}
	if got := counterValue(t, tg.Gateway, "mcpgate_refusals_total", refusedInsufficientScope); got != 1 {
		t.Errorf("refusals{insufficient_scope} = %v, want 1", got)
	}
	if got := counterValue(t, tg.Gateway, "mcpgate_auth_failures_total", "invalid"); got != 8 {
		t.Errorf("auth failures{invalid} = %v, want 8", got)
	}
	var denied *audit.Event
	for _, ev := range auditEvents(t, tg, logPath) {
		if ev.HTTPStatus == http.StatusForbidden {
			denied = &ev
		}
	}
	if denied == nil || denied.Principal != "user-42" || denied.AuthMethod != "oauth" || denied.Decision != audit.Deny ||
		!strings.Contains(denied.Reason, "mcp:tools") {
		t.Fatalf("403 audit record %+v, want a denial of user-42 by oauth naming the scope", denied)
	}
}

func jsonB64(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return jwtB64(b)
}

func jwtB64(b []byte) string { return strings.TrimRight(base64.RawURLEncoding.EncodeToString(b), "=") }

// introspectionServer is a real RFC 7662 endpoint on plain http loopback
// (auth.introspection.insecure_allow_http_loopback) that knows one token.
type introspectionServer struct {
	URL      string
	requests atomic.Int64
	down     atomic.Bool
}

func newIntrospectionServer(t *testing.T, token, answer string) *introspectionServer {
	s := &introspectionServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != "mcpgate" || p != "introspection-secret" || r.FormValue("token_type_hint") != "access_token" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("token") == token {
			w.Write([]byte(answer))
			return
		}
		w.Write([]byte(`{"active":false}`))
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// TestIntrospectionThroughGateway: an opaque token is introspected once and
// then served from the cache; an inactive one is a 401 invalid_token; an
// unreachable authorization server is a 503, not a 401.
func TestIntrospectionThroughGateway(t *testing.T) {
	const token = "opaque-access-token-4f9a"
	exp := time.Now().Add(time.Hour).Unix()
	as := newIntrospectionServer(t, token, `{"active":true,"sub":"svc-7","aud":"`+testResource+`","iss":"http://127.0.0.1/issuer","scope":"mcp:tools","roles":["reader"],"exp":`+strconv.FormatInt(exp, 10)+`}`)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("introspection-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	tg := newLoggedTestGateway(t, func(c *config.Config) {
		c.Auth.Introspection = &config.Introspection{
			URL:                       as.URL + "/introspect",
			ClientID:                  "mcpgate",
			ClientSecret:              &config.Value{Secret: "file:" + secretFile},
			Audience:                  testResource,
			Issuer:                    "http://127.0.0.1/issuer",
			InsecureAllowHTTPLoopback: true,
		}
		c.Auth.RequiredScopes = []string{"mcp:tools"}
		c.ApplyDefaults()
	}, slog.New(slog.NewTextHandler(logs, nil)))
	call := modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"hi"}`)
	for range 3 {
		if resp, b := tg.post(t, token, call, modernHeaders("tools/call", "echo")); resp.StatusCode != http.StatusOK {
			t.Fatalf("opaque token: %d %s", resp.StatusCode, b)
		}
	}
	if n := as.requests.Load(); n != 1 {
		t.Fatalf("%d introspection requests for three calls, want 1 (cached)", n)
	}
	resp, b := tg.post(t, "opaque-unknown", call, modernHeaders("tools/call", "echo"))
	if want := `Bearer error="invalid_token", resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`; resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("inactive token: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b)
	}
	// An API key is checked locally and never sent to the authorization server.
	before := as.requests.Load()
	if resp, b := tg.post(t, tg.keyA, call, modernHeaders("tools/call", "echo")); resp.StatusCode != 200 || as.requests.Load() != before {
		t.Fatalf("API key: %d %s, %d introspections", resp.StatusCode, b, as.requests.Load()-before)
	}
	as.down.Store(true)
	resp, b = tg.post(t, "opaque-other", call, modernHeaders("tools/call", "echo"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("authorization server down: %d %s", resp.StatusCode, b)
	}
	// The metadata names the introspection issuer as the authorization server.
	prmResp, err := http.Get(strings.TrimSuffix(tg.URL, EndpointPath) + PRMPath + EndpointPath)
	if err != nil {
		t.Fatal(err)
	}
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		ScopesSupported      []string `json:"scopes_supported"`
	}
	json.NewDecoder(prmResp.Body).Decode(&prm)
	prmResp.Body.Close()
	if prm.Resource != testResource || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != "http://127.0.0.1/issuer" ||
		len(prm.ScopesSupported) != 1 || prm.ScopesSupported[0] != "mcp:tools" {
		t.Fatalf("metadata %+v", prm)
	}
	for _, leaked := range []string{token, "opaque-unknown", "opaque-other", "introspection-secret"} {
		if strings.Contains(logs.String(), leaked) {
			t.Fatalf("the log holds %q:\n%s", leaked, logs.String())
		}
	}
}

// testPKI is a CA and certificates it issues, written as PEM files.
type testPKI struct {
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: t.TempDir(), ca: ca, key: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue makes a certificate for tmpl's names, signed by the CA.
func (p *testPKI) issue(t *testing.T, tmpl *x509.Certificate, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestMTLSThroughGateway runs the gateway's own TLS listener with
// listen.tls.client_ca and auth.mtls, and real handshakes: no certificate
// and a certificate of another CA are refused in the handshake; a mapped
// certificate is its principal (roles reach the policy, the audit record
// names it); a verified but unmapped one is a 401.
func TestMTLSThroughGateway(t *testing.T) {
	pki, other := newTestPKI(t, "mcpgate test CA"), newTestPKI(t, "another CA")
	server := pki.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, x509.ExtKeyUsageServerAuth)
	writePEM(t, filepath.Join(pki.dir, "server.pem"), "CERTIFICATE", server.Certificate[0])
	keyDER, err := x509.MarshalPKCS8PrivateKey(server.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(pki.dir, "server.key"), "PRIVATE KEY", keyDER)
	mapped := pki.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "deploy-bot"},
		URIs: []*url.URL{{Scheme: "spiffe", Host: "example.org", Path: "/ci/deployer"}}}, x509.ExtKeyUsageClientAuth)
	unmapped := pki.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "stranger"}}, x509.ExtKeyUsageClientAuth)
	foreign := other.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "deploy-bot"},
		URIs: []*url.URL{{Scheme: "spiffe", Host: "example.org", Path: "/ci/deployer"}}}, x509.ExtKeyUsageClientAuth)

	keyPath, logPath, _ := auditFiles(t)
	cfg := config.Default()
	cfg.Listen.Address, cfg.Admin.Address = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Listen.TLS = &config.TLS{Cert: filepath.Join(pki.dir, "server.pem"), Key: filepath.Join(pki.dir, "server.key"),
		ClientCA: filepath.Join(pki.dir, "ca.pem")}
	cfg.Auth.MTLS = &config.MTLS{Principals: []config.MTLSPrincipal{
		{ID: "ci-deployer", Roles: []string{"deployer"}, Match: config.MTLSMatch{URI: "spiffe://example.org/ci/deployer"}},
	}}
	cfg.Audit.Path, cfg.Audit.SigningKey = logPath, keyPath
	cfg.Policy = config.Policy{Rules: []config.PolicyRule{
		{Name: "deployers-echo", Roles: []string{"deployer"}, Allow: &config.PolicyTargets{Tools: []string{"echo"}}},
	}}
	cfg.ApplyDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatal(ps)
	}
	g, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln := serveOn(t, g)
	endpoint := g.EndpointURL(ln)

	post := func(cert *tls.Certificate, body string, name string) (*http.Response, []byte, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		modernHeaders("tools/call", name)(req)
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		var buf strings.Builder
		_, _ = io.Copy(&buf, resp.Body)
		return resp, []byte(buf.String()), nil
	}
	echo := modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"over mtls"}`)

	if _, _, err := post(nil, echo, "echo"); err == nil {
		t.Fatal("a client without a certificate completed the handshake")
	}
	if _, _, err := post(&foreign, echo, "echo"); err == nil {
		t.Fatal("a certificate of another CA completed the handshake")
	}
	resp, b, err := post(&mapped, echo, "echo")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("mapped certificate: %v %v %s", err, resp, b)
	}
	if r := decodeRPC(t, b); r.Error != nil || !strings.Contains(string(r.Result), "over mtls") {
		t.Fatalf("mapped certificate's call: %s", b)
	}
	// The role decides: the same principal may not call what the rule omits.
	if _, b, _ := post(&mapped, modernBody(2, "tools/call", `"name":"test_simple_text","arguments":{}`), "test_simple_text"); !strings.Contains(string(b), `"error"`) {
		t.Fatalf("a tool outside the role's rule was callable: %s", b)
	}
	resp, b, err = post(&unmapped, echo, "echo")
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "not mapped to a principal") {
		t.Fatalf("unmapped certificate: %v %v %s", err, resp, b)
	}
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The records name the certificate's principal and method (their other
	// fields are the audit package's business).
	var allowed, refused bool
	for line := range strings.SplitSeq(strings.TrimSpace(string(raw)), "\n") {
		var rec struct {
			Event map[string]any `json:"event"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Event == nil {
			continue
		}
		ev := rec.Event
		if ev["principal"] == "ci-deployer" && ev["auth_method"] == "mtls" && ev["name"] == "echo" && ev["decision"] == "allow" {
			allowed = true
		}
		if reason, _ := ev["reason"].(string); ev["decision"] == "deny" && strings.Contains(reason, "not mapped to a principal") {
			refused = true
		}
	}
	if !allowed || !refused {
		t.Fatalf("audit log lacks the mtls principal's allowed call (%v) or the unmapped certificate's denial (%v):\n%s", allowed, refused, raw)
	}
}
