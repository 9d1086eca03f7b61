package authn

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newKeys(t testing.TB, keys ...string) *APIKeys {
	t.Helper()
	var ids, digests []string
	var roles [][]string
	for i, k := range keys {
		sum := sha256.Sum256([]byte(k))
		ids = append(ids, fmt.Sprintf("key%d", i))
		digests = append(digests, hex.EncodeToString(sum[:]))
		roles = append(roles, []string{"r"})
	}
	a, err := NewAPIKeys(ids, digests, roles)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAPIKeysAuthenticate(t *testing.T) {
	good, digest := NewKey()
	if !strings.HasPrefix(good, KeyPrefix) || len(good) != len(KeyPrefix)+43 {
		t.Fatalf("NewKey() = %q, want %s + 43 base64url characters", good, KeyPrefix)
	}
	sum := sha256.Sum256([]byte(good))
	if digest != hex.EncodeToString(sum[:]) {
		t.Fatal("NewKey digest is not the SHA-256 of the key")
	}
	other, _ := NewKey()
	a := newKeys(t, other, good)

	tests := []struct {
		name    string
		headers []string // Authorization header values
		url     string
		wantID  string
		wantErr error
	}{
		{name: "valid key", headers: []string{"Bearer " + good}, wantID: "key1"},
		{name: "scheme is case-insensitive", headers: []string{"bearer " + good}, wantID: "key1"},
		{name: "other valid key", headers: []string{"Bearer " + other}, wantID: "key0"},
		{name: "no header", wantErr: ErrNoCredentials},
		{name: "key in query string never counts", url: "/mcp?api_key=" + good + "&access_token=" + good, wantErr: ErrNoCredentials},
		{name: "wrong key", headers: []string{"Bearer mgk_wrong"}, wantErr: ErrUnknownCredentials},
		{name: "key with one character changed", headers: []string{"Bearer " + good[:len(good)-1] + "x"}, wantErr: ErrUnknownCredentials},
		{name: "basic scheme", headers: []string{"Basic " + good}, wantErr: ErrMalformed},
		{name: "no token", headers: []string{"Bearer "}, wantErr: ErrMalformed},
		{name: "two tokens", headers: []string{"Bearer " + good + " " + good}, wantErr: ErrMalformed},
		{name: "two headers", headers: []string{"Bearer " + good, "Bearer " + good}, wantErr: ErrMalformed},
		{name: "oversized token", headers: []string{"Bearer " + strings.Repeat("a", maxTokenBytes+1)}, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.url
			if url == "" {
				url = "/mcp"
			}
			r := httptest.NewRequest(http.MethodPost, url, nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			p, err := a.Authenticate(r)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Authenticate error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if p.ID != tt.wantID || p.Method != MethodAPIKey || p.SessionOwner() != "api_key:"+tt.wantID {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
}

func TestNewAPIKeysRejectsBadDigest(t *testing.T) {
	if _, err := NewAPIKeys([]string{"a"}, []string{"zz"}, [][]string{nil}); err == nil {
		t.Fatal("NewAPIKeys accepted a non-hex digest")
	}
}

func TestPrincipalContext(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if PrincipalFrom(r.Context()) != nil {
		t.Fatal("principal in a fresh context")
	}
	p := &Principal{ID: "x", Method: MethodNone}
	if got := PrincipalFrom(WithPrincipal(r.Context(), p)); got != p {
		t.Fatalf("PrincipalFrom = %v", got)
	}
}

func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer abc")
	f.Add("bearer  abc")
	f.Add("Basic abc")
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", h)
		tok, err := BearerToken(r)
		if err == nil && (tok == "" || strings.ContainsAny(tok, " \t") || len(tok) > maxTokenBytes) {
			t.Fatalf("accepted token %q from %q", tok, h)
		}
	})
}

func ExampleNewKey() {
	key, digest := NewKey()
	fmt.Println(strings.HasPrefix(key, KeyPrefix), len(digest))
	// Output: true 64
}
