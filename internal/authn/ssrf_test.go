package authn

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestFetcherRefusesForbiddenURLs(t *testing.T) {
	f := NewFetcher(FetcherOptions{})
	tests := []struct {
		url  string
		want string
	}{
		{"https://127.0.0.1/jwks", "address refused"},
		{"https://10.1.2.3/jwks", "address refused"},
		{"https://192.168.0.1/jwks", "address refused"},
		{"https://172.16.0.1/jwks", "address refused"},
		{"https://169.254.169.254/latest/meta-data/", "address refused"},
		{"https://[::1]/jwks", "address refused"},
		{"https://[::ffff:127.0.0.1]/jwks", "address refused"},
		{"https://[::ffff:169.254.169.254]/jwks", "address refused"},
		{"https://[fd00:ec2::254]/jwks", "address refused"},
		{"https://[fe80::1]/jwks", "address refused"},
		{"https://100.100.100.200/jwks", "address refused"},
		{"https://0.0.0.0/jwks", "address refused"},
		{"https://localhost:1/jwks", "address refused"}, // refused after resolution
		{"http://issuer.example.com/jwks", "only https"},
		{"http://127.0.0.1/jwks", "only https"},
		{"file:///etc/passwd", "not an absolute URL"},
		{"ftp://issuer.example.com/jwks", "only https"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := f.Get(context.Background(), tt.url)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Get(%s) = %v, want an error containing %q", tt.url, err, tt.want)
			}
		})
	}
}

func TestAllowedAddr(t *testing.T) {
	for _, tt := range []struct {
		ip       string
		loopback bool
		want     bool
	}{
		{"93.184.215.14", false, true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", false, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1", true, true},
		{"::1", true, true},
		{"::ffff:10.0.0.1", true, false},
		{"169.254.169.254", true, false},
		{"fc00::1", true, false},
		{"224.0.0.1", false, false},
		{"198.18.0.1", false, false},
	} {
		if got := AllowedAddr(netip.MustParseAddr(tt.ip), tt.loopback); got != tt.want {
			t.Errorf("AllowedAddr(%s, loopback=%v) = %v, want %v", tt.ip, tt.loopback, got, tt.want)
		}
	}
}

func TestFetcherRefusesRedirects(t *testing.T) {
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[]}`))
	}))
	defer target.Close()
	redirect := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer redirect.Close()
	f := NewFetcher(FetcherOptions{AllowLoopback: true, RootCAs: redirect.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs})
	_, err := f.Get(context.Background(), redirect.URL)
	if err == nil || !strings.Contains(err.Error(), "redirects are not followed") {
		t.Fatalf("redirect followed: %v", err)
	}
}

func TestFetcherLoopbackOptIn(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	defer plain.Close()
	if _, err := NewFetcher(FetcherOptions{}).Get(context.Background(), plain.URL); err == nil {
		t.Fatal("plain http to loopback fetched without the opt-in")
	}
	body, err := NewFetcher(FetcherOptions{AllowLoopback: true}).Get(context.Background(), plain.URL)
	if err != nil || string(body) != "ok" {
		t.Fatalf("with the opt-in: %q, %v", body, err)
	}
}

func TestFetcherCapsBodyAndStatus(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(strings.Repeat("x", 2048)))
	}))
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	f := NewFetcher(FetcherOptions{AllowLoopback: true, RootCAs: roots, MaxBytes: 1024})
	if _, err := f.Get(context.Background(), srv.URL); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized body: %v", err)
	}
	if _, err := f.Get(context.Background(), srv.URL+"/missing"); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Fatalf("404: %v", err)
	}
	// Without trust in the test certificate, TLS fails: https is verified.
	if _, err := NewFetcher(FetcherOptions{AllowLoopback: true}).Get(context.Background(), srv.URL); err == nil {
		t.Fatal("untrusted certificate accepted")
	}
}

func TestParseJWKSSkipsBadKeys(t *testing.T) {
	good := newECKey(t, "good").jwk()
	body := `{"keys":[
		{"kty":"RSA","kid":"weak","n":"AQAB","e":"AQAB"},
		{"kty":"EC","kid":"off-curve","crv":"P-256","x":"` + good["x"] + `","y":"` + good["x"] + `"},
		{"kty":"oct","kid":"hmac","k":"c2VjcmV0"},
		{"kty":"EC","kid":"enc","use":"enc","crv":"P-256","x":"` + good["x"] + `","y":"` + good["y"] + `"},
		{"kty":"EC","crv":"P-256","x":"` + good["x"] + `","y":"` + good["y"] + `"},
		{"kty":"EC","kid":"good","crv":"P-256","x":"` + good["x"] + `","y":"` + good["y"] + `"}
	]}`
	keys, err := parseJWKS([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys["good"].key == nil {
		t.Fatalf("keys = %v, want only \"good\"", keys)
	}
	if _, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`)); err == nil {
		t.Fatal("a JWKS with no usable key parsed")
	}
}
