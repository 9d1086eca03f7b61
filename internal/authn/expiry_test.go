package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestPrincipalExpires: a principal says when its credential stops being
// accepted, the instant long-lived streams end: a JWT's exp plus the
// leeway, an introspected token's likewise (none if the answer names no
// exp), the first NotAfter of a client certificate's verified chain, never
// for an API key.
func TestPrincipalExpires(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	now := clk.Now()
	const leeway = 30 * time.Second // newVerifier's and newIntrospector's

	rsaKey := newRSAKey(t, "rsa-1")
	v := newVerifier(t, newIssuer(t, rsaKey), clk, nil)
	p, err := v.Verify(context.Background(), sign(t, rsaKey, baseClaims(now), nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(10*time.Minute + leeway); !p.Expires.Equal(want) {
		t.Errorf("JWT principal expires %v, want exp + leeway %v", p.Expires, want)
	}

	as := newAuthServer(t)
	in := newIntrospector(t, as, clk, nil)
	for i, tt := range []struct {
		answer string
		want   time.Time
	}{
		{activeAnswer(now, nil), now.Add(10*time.Minute + leeway)},
		{activeAnswer(now, func(a map[string]any) { delete(a, "exp") }), time.Time{}},
	} {
		token := fmt.Sprintf("opaque-expiry-token-%d-xxxxxxxxxxxx", i)
		as.set(token, tt.answer)
		p, err := in.Verify(context.Background(), token)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Expires.Equal(tt.want) {
			t.Errorf("introspected principal %d expires %v, want %v", i, p.Expires, tt.want)
		}
	}

	m, err := NewMTLS(testMappings)
	if err != nil {
		t.Fatal(err)
	}
	m.now = clk.Now
	cert := leaf("ci-runner", nil, nil, nil)
	cert.NotAfter = now.Add(90 * 24 * time.Hour)
	ca := &x509.Certificate{NotAfter: now.Add(30 * 24 * time.Hour)} // the chain ends first
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert, ca}}}
	if p, err := m.Authenticate(r); err != nil || !p.Expires.Equal(ca.NotAfter) {
		t.Errorf("certificate principal = %+v, %v; want it to expire with its chain at %v", p, err, ca.NotAfter)
	}

	key, digest := NewKey()
	keys, err := NewAPIKeys([]string{"alice"}, []string{digest}, [][]string{nil})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := keys.Authenticate(bearerRequest(key)); err != nil || !p.Expires.IsZero() {
		t.Errorf("API key principal = %+v, %v; want no expiry", p, err)
	}
}
