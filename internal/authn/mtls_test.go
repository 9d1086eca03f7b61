package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testMappings = []CertMapping{
	{ID: "ci", Roles: []string{"deployer"}, Field: FieldCommonName, Value: "ci-runner"},
	{ID: "web", Roles: []string{"reader"}, Field: FieldDNS, Value: "Web.Example.com"},
	{ID: "spiffe", Field: FieldURI, Value: "spiffe://example.org/ns/prod/sa/agent"},
	{ID: "alice", Roles: []string{"admin"}, Field: FieldEmail, Value: "alice@example.com"},
}

func leaf(cn string, dns []string, uris []string, emails []string) *x509.Certificate {
	// Valid for a day, as a certificate the TLS layer just verified is.
	c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns, EmailAddresses: emails, NotAfter: time.Now().Add(24 * time.Hour)}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			panic(err)
		}
		c.URIs = append(c.URIs, pu)
	}
	return c
}

func TestMTLSMap(t *testing.T) {
	m, err := NewMTLS(testMappings)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cert   *x509.Certificate
		wantID string
		err    error
	}{
		{"common name", leaf("ci-runner", nil, nil, nil), "ci", nil},
		{"dns, case-insensitive", leaf("", []string{"other.example.com", "web.EXAMPLE.com"}, nil, nil), "web", nil},
		{"uri", leaf("x", nil, []string{"spiffe://example.org/ns/prod/sa/agent"}, nil), "spiffe", nil},
		{"email, exact", leaf("", nil, nil, []string{"alice@example.com"}), "alice", nil},
		{"email is case-sensitive", leaf("", nil, nil, []string{"Alice@example.com"}), "", ErrCertUnmapped},
		{"cn is not a dns match", leaf("web.example.com", nil, nil, nil), "", ErrCertUnmapped},
		{"dns is not a cn match", leaf("", []string{"ci-runner"}, nil, nil), "", ErrCertUnmapped},
		{"uri prefix is no match", leaf("", nil, []string{"spiffe://example.org/ns/prod/sa/agent/x"}, nil), "", ErrCertUnmapped},
		{"nothing mapped", leaf("nobody", []string{"a.example.com"}, nil, nil), "", ErrCertUnmapped},
		{"two principals", leaf("ci-runner", []string{"web.example.com"}, nil, nil), "", ErrCertAmbiguous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := m.Map(tt.cert)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || p != nil {
					t.Fatalf("Map = %+v, %v; want %v", p, err, tt.err)
				}
				return
			}
			if err != nil || p.ID != tt.wantID || p.Method != MethodMTLS || p.SessionOwner() != "mtls:"+tt.wantID {
				t.Fatalf("Map = %+v, %v; want %s", p, err, tt.wantID)
			}
		})
	}
	if _, err := NewMTLS([]CertMapping{{ID: "a", Field: FieldDNS, Value: "A.example.com"}, {ID: "b", Field: FieldDNS, Value: "a.example.com"}}); err == nil {
		t.Fatal("a DNS name mapped twice (differing in case) was accepted")
	}
	if _, err := NewMTLS([]CertMapping{{ID: "a", Field: "serial", Value: "1"}}); err == nil {
		t.Fatal("an unknown field was accepted")
	}
}

// TestMTLSOnlyVerifiedChains: a presented but unverified certificate is no
// credential.
func TestMTLSOnlyVerifiedChains(t *testing.T) {
	m, _ := NewMTLS(testMappings)
	cert := leaf("ci-runner", nil, nil, nil)
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	if _, err := m.Authenticate(r); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("plaintext: %v", err)
	}
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	if _, err := m.Authenticate(r); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("unverified certificate: %v", err)
	}
	cert.NotAfter = time.Now().Add(time.Hour)
	r.TLS.VerifiedChains = [][]*x509.Certificate{{cert}}
	if p, err := m.Authenticate(r); err != nil || p.ID != "ci" {
		t.Fatalf("verified certificate: %+v, %v", p, err)
	}
	// Verified at the handshake, expired since, on a kept-alive connection.
	cert.NotAfter = time.Now().Add(-time.Second)
	if p, err := m.Authenticate(r); !errors.Is(err, ErrCertExpired) || p != nil {
		t.Fatalf("certificate expired since the handshake: %+v, %v", p, err)
	}
}

func FuzzMTLSMap(f *testing.F) {
	f.Add("ci-runner", "web.example.com", "spiffe://example.org/ns/prod/sa/agent", "alice@example.com")
	f.Add("", "WEB.EXAMPLE.COM", "", "")
	f.Add("ci-runner\x00", "web.example.com.", "spiffe://example.org/ns/prod/sa/agent?x", "alice@example.com ")
	m, err := NewMTLS(testMappings)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cn, dns, uri, email string) {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{dns}, EmailAddresses: []string{email}}
		if u, err := url.Parse(uri); err == nil {
			c.URIs = []*url.URL{u}
		}
		p, err := m.Map(c)
		if err != nil {
			if p != nil || !(errors.Is(err, ErrCertUnmapped) || errors.Is(err, ErrCertAmbiguous)) {
				t.Fatalf("Map = %+v, %v", p, err)
			}
			return
		}
		// A mapped principal is named exactly by one field of the certificate.
		i := slices.IndexFunc(testMappings, func(cm CertMapping) bool { return cm.ID == p.ID })
		cm := testMappings[i]
		var got []string
		switch cm.Field {
		case FieldCommonName:
			got = []string{cn}
		case FieldDNS:
			got = []string{strings.ToLower(dns)}
			cm.Value = strings.ToLower(cm.Value)
		case FieldURI:
			for _, u := range c.URIs {
				got = append(got, u.String())
			}
		case FieldEmail:
			got = []string{email}
		}
		if !slices.Contains(got, cm.Value) || p.Method != MethodMTLS {
			t.Fatalf("%+v mapped to %+v", c, p)
		}
	})
}

// TestBearerRoutesAndScopes: every credential goes where its shape says,
// an API key never reaches the authorization server, the header decides
// over a certificate, and required scopes bind OAuth tokens only.
func TestBearerRoutesAndScopes(t *testing.T) {
	key := newRSAKey(t, "k")
	is := newIssuer(t, key)
	as := newAuthServer(t)
	clk := &clock{now: time.Now()}
	apiKey, _ := NewKey()
	jwtV := newVerifier(t, is, clk, nil)
	intro := newIntrospector(t, as, clk, nil)
	mtls, _ := NewMTLS(testMappings)
	as.set("opaque-ok", activeAnswer(clk.Now(), nil))
	as.set("opaque-few-scopes", activeAnswer(clk.Now(), func(a map[string]any) { a["scope"] = "tools:list" }))
	jwtToken := sign(t, key, baseClaims(clk.Now()), nil)
	jwtFewScopes := sign(t, key, func() jwt.MapClaims { c := baseClaims(clk.Now()); c["scope"] = "tools:list"; return c }(), nil)
	as.set(jwtToken, activeAnswer(clk.Now(), nil)) // a JWT the introspection-only bearer sends there

	full := Bearer{APIKeys: newKeys(t, apiKey), JWT: jwtV, Introspection: intro, MTLS: mtls, RequiredScopes: []string{"tools:call"}}
	introOnly := Bearer{Introspection: intro}
	withCert := func(r *http.Request) *http.Request {
		c := leaf("ci-runner", nil, nil, nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
		return r
	}
	noHeader := func() *http.Request { return httptest.NewRequest(http.MethodPost, "/mcp", nil) }
	tests := []struct {
		name    string
		b       Bearer
		r       *http.Request
		wantID  string
		method  Method
		err     error
		missing []string
	}{
		{name: "api key", b: full, r: bearerRequest(apiKey), wantID: "key0", method: MethodAPIKey},
		{name: "unknown api key", b: full, r: bearerRequest("mgk_unknown"), err: ErrUnknownCredentials},
		{name: "jwt", b: full, r: bearerRequest(jwtToken), wantID: "alice@example.com", method: MethodOAuth},
		{name: "opaque", b: full, r: bearerRequest("opaque-ok"), wantID: "alice@example.com", method: MethodOAuth},
		{name: "inactive opaque", b: full, r: bearerRequest("opaque-unknown"), err: ErrInvalidToken},
		{name: "jwt lacking a required scope", b: full, r: bearerRequest(jwtFewScopes), err: &InsufficientScopeError{}, missing: []string{"tools:call"}},
		{name: "opaque lacking a required scope", b: full, r: bearerRequest("opaque-few-scopes"), err: &InsufficientScopeError{}, missing: []string{"tools:call"}},
		{name: "certificate without a header", b: full, r: withCert(noHeader()), wantID: "ci", method: MethodMTLS},
		{name: "header decides over a certificate", b: full, r: withCert(bearerRequest(apiKey)), wantID: "key0", method: MethodAPIKey},
		{name: "a bad header is not rescued by a certificate", b: full, r: withCert(bearerRequest("mgk_unknown")), err: ErrUnknownCredentials},
		{name: "no header, no certificate", b: full, r: noHeader(), err: ErrNoCredentials},
		{name: "introspection only: a JWT-shaped token is introspected", b: introOnly, r: bearerRequest(jwtToken), wantID: "alice@example.com", method: MethodOAuth},
		{name: "introspection only: api keys are refused locally", b: introOnly, r: bearerRequest(apiKey), err: ErrUnknownCredentials},
		{name: "introspection only: no certificate mapping", b: introOnly, r: withCert(noHeader()), err: ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := as.requests.Load()
			p, err := tt.b.Authenticate(tt.r.WithContext(context.Background()))
			var se *InsufficientScopeError
			switch {
			case tt.missing != nil:
				if !errors.As(err, &se) || !slices.Equal(se.Missing, tt.missing) || se.Principal == nil || p != nil ||
					!strings.Contains(err.Error(), "tools:call") {
					t.Fatalf("Authenticate = %+v, %v; want insufficient scope %v", p, err, tt.missing)
				}
			case tt.err != nil:
				if !errors.Is(err, tt.err) || p != nil {
					t.Fatalf("Authenticate = %+v, %v; want %v", p, err, tt.err)
				}
			default:
				if err != nil || p.ID != tt.wantID || p.Method != tt.method {
					t.Fatalf("Authenticate = %+v, %v; want %s by %s", p, err, tt.wantID, tt.method)
				}
			}
			if strings.HasPrefix(tt.name, "api key") || strings.Contains(tt.name, "api keys") {
				if as.requests.Load() != before {
					t.Fatal("an API key was sent to the authorization server")
				}
			}
		})
	}
	as.checkRequests(t)
}
