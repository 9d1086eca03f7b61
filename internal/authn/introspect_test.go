package authn

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/secret"
)

const (
	testClientID     = "mcpgate"
	testClientSecret = "s3cret:with&odd=chars"
)

// authServer is a real RFC 7662 introspection endpoint on an httptest TLS
// server. answers maps a token to the JSON it answers; an unknown token is
// {"active":false}. It checks the request the way an authorization server
// does and counts requests and the most in flight at once.
type authServer struct {
	srv      *httptest.Server
	mu       sync.Mutex
	answers  map[string]string
	requests atomic.Int64
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	gate     chan struct{} // when not nil, every request waits for it to close
	status   int           // when not 0, every request is answered with it
	bad      atomic.Value  // the first malformed request's description
}

func newAuthServer(t testing.TB) *authServer {
	as := &authServer{answers: map[string]string{}}
	as.srv = httptest.NewTLSServer(http.HandlerFunc(as.serve))
	t.Cleanup(as.srv.Close)
	return as
}

func (as *authServer) serve(w http.ResponseWriter, r *http.Request) {
	as.requests.Add(1)
	n := as.inFlight.Add(1)
	defer as.inFlight.Add(-1)
	for {
		m := as.maxSeen.Load()
		if n <= m || as.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	as.mu.Lock()
	gate, status := as.gate, as.status
	as.mu.Unlock()
	if gate != nil {
		<-gate
	}
	user, pass, ok := r.BasicAuth()
	switch {
	case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded":
		as.bad.CompareAndSwap(nil, "not a form POST")
	case !ok || user != testClientID || pass != "s3cret%3Awith%26odd%3Dchars":
		as.bad.CompareAndSwap(nil, fmt.Sprintf("client credentials %q %q", user, pass))
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	case r.URL.RawQuery != "":
		as.bad.CompareAndSwap(nil, "token in the query string")
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" {
		as.bad.CompareAndSwap(nil, "no token_type_hint=access_token")
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	as.mu.Lock()
	answer, ok := as.answers[r.PostForm.Get("token")]
	as.mu.Unlock()
	if !ok {
		answer = `{"active":false}`
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(answer))
}

func (as *authServer) set(token, answer string) {
	as.mu.Lock()
	as.answers[token] = answer
	as.mu.Unlock()
}

func (as *authServer) checkRequests(t *testing.T) {
	t.Helper()
	if b := as.bad.Load(); b != nil {
		t.Errorf("the authorization server saw a bad request: %v", b)
	}
}

func newIntrospector(t testing.TB, as *authServer, clk *clock, mod func(*IntrospectionOptions)) *Introspector {
	t.Helper()
	o := IntrospectionOptions{
		URL:           as.srv.URL + "/introspect",
		ClientID:      testClientID,
		ClientSecret:  secret.New(testClientSecret),
		Audience:      testAudience,
		Issuer:        testIssuer,
		RolesClaim:    "roles",
		Leeway:        30 * time.Second,
		CacheTTL:      time.Minute,
		CacheSize:     100,
		MaxConcurrent: 8,
		Fetcher:       FetcherOptions{AllowLoopback: true, RootCAs: roots(as.srv)},
		Now:           clk.Now,
	}
	if mod != nil {
		mod(&o)
	}
	in, err := NewIntrospector(o)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func roots(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

// activeAnswer is an active token's answer at now, modified by mod.
func activeAnswer(now time.Time, mod func(map[string]any)) string {
	a := map[string]any{
		"active": true, "sub": "alice@example.com", "client_id": "app",
		"scope": "tools:call tools:list", "aud": []string{"https://other.example.com", testAudience},
		"iss": testIssuer, "exp": now.Add(10 * time.Minute).Unix(), "iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(), "roles": []string{"reader"}, "token_type": "Bearer",
	}
	if mod != nil {
		mod(a)
	}
	b, _ := json.Marshal(a)
	return string(b)
}

func TestIntrospection(t *testing.T) {
	as := newAuthServer(t)
	clk := &clock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	now := clk.Now()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	in := newIntrospector(t, as, clk, func(o *IntrospectionOptions) { o.Logger = logger })
	noLeeway := newIntrospector(t, as, clk, func(o *IntrospectionOptions) { o.Leeway = 0; o.Logger = logger })

	tests := []struct {
		name       string
		answer     string // "" leaves the token unknown to the server: inactive
		raw        bool   // answer is sent as is
		v          *Introspector
		wantReason string // for ErrInvalidToken
		wantErr    error  // other errors
	}{
		{name: "active", answer: activeAnswer(now, nil)},
		{name: "active, single aud, no iss, no exp", answer: activeAnswer(now, func(a map[string]any) {
			a["aud"] = testAudience
			delete(a, "iss")
			delete(a, "exp")
		})},
		{name: "expired within leeway", answer: activeAnswer(now, func(a map[string]any) { a["exp"] = now.Add(-20 * time.Second).Unix() })},
		{name: "unknown to the server", wantReason: "inactive"},
		{name: "active false", answer: `{"active":false,"sub":"alice@example.com"}`, wantReason: "inactive"},
		{name: "active as a string", answer: `{"active":"true","sub":"x"}`, raw: true, wantErr: ErrUnavailable},
		{name: "expired", answer: activeAnswer(now, func(a map[string]any) { a["exp"] = now.Add(-31 * time.Second).Unix() }), wantReason: "expired"},
		{name: "expired just now without leeway", v: noLeeway,
			answer: activeAnswer(now, func(a map[string]any) { a["exp"] = now.Add(-time.Second).Unix() }), wantReason: "expired"},
		{name: "not valid yet", answer: activeAnswer(now, func(a map[string]any) { a["nbf"] = now.Add(5 * time.Minute).Unix() }), wantReason: "not valid yet"},
		{name: "nbf within leeway", answer: activeAnswer(now, func(a map[string]any) { a["nbf"] = now.Add(20 * time.Second).Unix() })},
		{name: "nbf just ahead without leeway", v: noLeeway,
			answer: activeAnswer(now, func(a map[string]any) { a["nbf"] = now.Add(time.Second).Unix() }), wantReason: "not valid yet"},
		{name: "wrong aud", answer: activeAnswer(now, func(a map[string]any) { a["aud"] = "https://other.example.com" }), wantReason: "wrong audience"},
		{name: "no aud", answer: activeAnswer(now, func(a map[string]any) { delete(a, "aud") }), wantReason: "missing audience"},
		{name: "wrong iss", answer: activeAnswer(now, func(a map[string]any) { a["iss"] = "https://evil.example.com" }), wantReason: "wrong issuer"},
		{name: "refresh token", answer: activeAnswer(now, func(a map[string]any) { a["token_type"] = "refresh_token" }), wantReason: "not an access token"},
		{name: "exp not a number", answer: activeAnswer(now, func(a map[string]any) { a["exp"] = "soon" }), wantReason: "exp is not a number"},
		{name: "no sub", answer: activeAnswer(now, func(a map[string]any) { delete(a, "sub") }), wantReason: "sub missing"},
		{name: "roles of the wrong type", answer: activeAnswer(now, func(a map[string]any) { a["roles"] = 7 }), wantReason: "roles claim"},
		{name: "not JSON", answer: `<html>`, raw: true, wantErr: ErrUnavailable},
		{name: "two objects", answer: `{"active":true}{"active":true}`, raw: true, wantErr: ErrUnavailable},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := fmt.Sprintf("opaque-token-%d-%s", i, strings.Repeat("z", 20))
			if tt.answer != "" {
				as.set(token, tt.answer)
			}
			v := tt.v
			if v == nil {
				v = in
			}
			p, err := v.Verify(context.Background(), token)
			switch {
			case tt.wantReason != "":
				if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.wantReason) || p != nil {
					t.Fatalf("Verify = %v, %v; want invalid token: %s", p, err, tt.wantReason)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) || p != nil {
					t.Fatalf("Verify = %v, %v; want %v", p, err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if p.ID != "alice@example.com" || p.Method != MethodOAuth || !slices.Equal(p.Roles, []string{"reader"}) ||
					!slices.Equal(p.Scopes, []string{"tools:call", "tools:list"}) || p.SessionOwner() != "oauth:alice@example.com" {
					t.Fatalf("principal = %+v", p)
				}
			}
			if err != nil && strings.Contains(err.Error(), token) {
				t.Fatalf("the error names the token: %v", err)
			}
		})
	}
	as.checkRequests(t)
	if strings.Contains(logs.String(), "opaque-token-") {
		t.Fatalf("a token reached the log:\n%s", logs.String())
	}
}

func TestIntrospectionServerFailures(t *testing.T) {
	clk := &clock{now: time.Now()}
	for _, tt := range []struct {
		name string
		edit func(*authServer, *IntrospectionOptions)
	}{
		{"server error", func(as *authServer, _ *IntrospectionOptions) {
			as.mu.Lock()
			as.status = http.StatusInternalServerError
			as.mu.Unlock()
		}},
		{"wrong client secret", func(_ *authServer, o *IntrospectionOptions) { o.ClientSecret = secret.New("wrong") }},
		{"untrusted certificate", func(_ *authServer, o *IntrospectionOptions) { o.Fetcher.RootCAs = nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			as := newAuthServer(t)
			in := newIntrospector(t, as, clk, func(o *IntrospectionOptions) { tt.edit(as, o) })
			as.set("tok", activeAnswer(clk.Now(), nil))
			if p, err := in.Verify(context.Background(), "tok"); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Verify = %v, %v; want ErrUnavailable", p, err)
			}
			// A failure to ask is not cached as the token's answer.
			if in.negative.len() != 0 || in.positive.len() != 0 {
				t.Fatal("a transport failure was cached")
			}
		})
	}
	// The URL itself is checked up front: https only, no private address.
	for _, u := range []string{"http://auth.example.com/introspect", "https://169.254.169.254/introspect", "https://10.0.0.1/i", "https://127.0.0.1/i"} {
		_, err := NewIntrospector(IntrospectionOptions{URL: u, ClientID: "c", ClientSecret: secret.New("s"), Audience: testAudience,
			CacheTTL: time.Minute, CacheSize: 1, MaxConcurrent: 1})
		if err == nil {
			t.Errorf("NewIntrospector accepted url %s", u)
		}
	}
}

func TestIntrospectionCache(t *testing.T) {
	as := newAuthServer(t)
	clk := &clock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	in := newIntrospector(t, as, clk, nil)
	verify := func(tok string) error {
		_, err := in.Verify(context.Background(), tok)
		return err
	}

	// An active answer is reused until min(cache_ttl, exp - now).
	as.set("short", activeAnswer(clk.Now(), func(a map[string]any) { a["exp"] = clk.Now().Add(20 * time.Second).Unix() }))
	as.set("long", activeAnswer(clk.Now(), nil)) // exp in 10 min: the 1 min cache_ttl bounds it
	for range 3 {
		if verify("short") != nil || verify("long") != nil {
			t.Fatal("active tokens refused")
		}
	}
	if n := as.requests.Load(); n != 2 {
		t.Fatalf("%d requests for two tokens asked three times each, want 2", n)
	}
	clk.Advance(21 * time.Second) // past short's exp (still within leeway), within cache_ttl
	verify("short")
	verify("long")
	if n := as.requests.Load(); n != 3 {
		t.Fatalf("%d requests, want 3: short's entry must have died with its exp, long's not", n)
	}
	clk.Advance(40 * time.Second) // past cache_ttl for long
	verify("long")
	if n := as.requests.Load(); n != 4 {
		t.Fatalf("%d requests, want 4 after cache_ttl", n)
	}

	// A refused token's answer is reused for DefaultNegativeTTL, then asked
	// again (it may have become active).
	for range 5 {
		if err := verify("dead"); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("dead token: %v", err)
		}
	}
	if n := as.requests.Load(); n != 5 {
		t.Fatalf("%d requests, want 5: a negative answer is cached", n)
	}
	as.set("dead", activeAnswer(clk.Now(), nil))
	clk.Advance(DefaultNegativeTTL)
	if err := verify("dead"); err != nil {
		t.Fatalf("token activated after the negative TTL: %v", err)
	}
	if n := as.requests.Load(); n != 6 {
		t.Fatalf("%d requests, want 6", n)
	}
	// The cache is keyed by the token's SHA-256 only.
	in.positive.mu.Lock()
	for k := range in.positive.items {
		if bytes.Contains(k[:], []byte("long")) {
			t.Error("the cache key holds the token")
		}
	}
	in.positive.mu.Unlock()
	as.checkRequests(t)
}

// TestIntrospectionCoalesces: many concurrent requests with one token are
// one request to the authorization server.
func TestIntrospectionCoalesces(t *testing.T) {
	as := newAuthServer(t)
	clk := &clock{now: time.Now()}
	in := newIntrospector(t, as, clk, nil)
	as.set("shared", activeAnswer(clk.Now(), nil))
	as.mu.Lock()
	as.gate = make(chan struct{})
	as.mu.Unlock()
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 50 {
		wg.Go(func() {
			if _, err := in.Verify(context.Background(), "shared"); err != nil {
				failures.Add(1)
			}
		})
	}
	// Let every goroutine reach the flight before the server answers.
	for deadline := time.Now().Add(10 * time.Second); as.requests.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	as.mu.Lock()
	close(as.gate)
	as.gate = nil
	as.mu.Unlock()
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d lookups failed", failures.Load())
	}
	if n := as.requests.Load(); n != 1 {
		t.Fatalf("%d requests for 50 concurrent lookups of one token, want 1", n)
	}
}

// TestIntrospectionFloodIsBounded: a flood of distinct random tokens keeps
// at most max_concurrent requests in flight at the authorization server,
// is refused (ErrUnavailable) rather than queued without end when the slots
// stay busy, and leaves at most cache_size negative answers in memory.
func TestIntrospectionFloodIsBounded(t *testing.T) {
	as := newAuthServer(t)
	clk := &clock{now: time.Now()}
	const maxConcurrent, cacheSize, tokens = 4, 50, 400
	in := newIntrospector(t, as, clk, func(o *IntrospectionOptions) {
		o.MaxConcurrent = maxConcurrent
		o.CacheSize = cacheSize
		o.QueueWait = time.Minute // every lookup waits its turn here
	})
	as.set("valid", activeAnswer(clk.Now(), nil))
	if _, err := in.Verify(context.Background(), "valid"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var invalid atomic.Int64
	for i := range tokens {
		wg.Go(func() {
			if _, err := in.Verify(context.Background(), fmt.Sprintf("random-%d", i)); errors.Is(err, ErrInvalidToken) {
				invalid.Add(1)
			}
		})
	}
	wg.Wait()
	if invalid.Load() != tokens {
		t.Fatalf("%d of %d random tokens refused as invalid", invalid.Load(), tokens)
	}
	if m := as.maxSeen.Load(); m > maxConcurrent {
		t.Fatalf("%d introspection requests in flight at once, want at most %d", m, maxConcurrent)
	}
	if n := as.requests.Load(); n != tokens+1 {
		t.Fatalf("%d requests, want %d (one per distinct token)", n, tokens+1)
	}
	if in.negative.len() > cacheSize || in.positive.len() != 1 {
		t.Fatalf("cache holds %d negative (cap %d) and %d positive answers", in.negative.len(), cacheSize, in.positive.len())
	}
	// The flood did not evict the valid token's answer.
	before := as.requests.Load()
	if _, err := in.Verify(context.Background(), "valid"); err != nil || as.requests.Load() != before {
		t.Fatalf("valid token after the flood: %v, %d new requests", err, as.requests.Load()-before)
	}

	// With the slots held and a short queue wait, lookups are refused fast.
	short := newIntrospector(t, as, clk, func(o *IntrospectionOptions) {
		o.MaxConcurrent = 1
		o.QueueWait = 50 * time.Millisecond
	})
	as.mu.Lock()
	as.gate = make(chan struct{})
	as.mu.Unlock()
	held := make(chan error, 1)
	go func() { _, err := short.Verify(context.Background(), "holder"); held <- err }()
	for deadline := time.Now().Add(10 * time.Second); as.inFlight.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if _, err := short.Verify(context.Background(), "another"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("lookup with every slot busy: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a refused lookup took %v", d)
	}
	as.mu.Lock()
	close(as.gate)
	as.gate = nil
	as.mu.Unlock()
	if err := <-held; !errors.Is(err, ErrInvalidToken) {
		t.Errorf("holder: %v", err)
	}
}

// TestLRUCacheMemoryIsBounded measures the heap after many distinct tokens:
// it stays near what cache_size entries take, not what every token would.
func TestLRUCacheMemoryIsBounded(t *testing.T) {
	const size, tokens = 1000, 200000
	c := newLRUCache(size)
	now := time.Now()
	err := invalidToken("inactive")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range tokens {
		var k tokenKey
		copy(k[:], fmt.Appendf(nil, "%032d", i))
		c.put(&cacheEntry{key: k, err: err, expires: now.Add(time.Minute)})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if c.len() != size {
		t.Fatalf("cache holds %d entries, want %d", c.len(), size)
	}
	// One entry is ~200 bytes (list element, entry, map slot): 1000 are
	// ~0.2 MB, 200000 would be ~40 MB.
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %d bytes for %d distinct tokens in a cache of %d", grown, tokens, size)
	if grown > 4<<20 {
		t.Fatalf("heap grew %d bytes: the cache is not bounded", grown)
	}
	runtime.KeepAlive(c)
}

func FuzzParseIntrospection(f *testing.F) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Add([]byte(activeAnswer(now, nil)))
	f.Add([]byte(`{"active":false}`))
	f.Add([]byte(`{"active":true,"sub":"a","aud":"` + testAudience + `","exp":1e300}`))
	f.Add([]byte(`{"active":true,"sub":"a","aud":["` + testAudience + `"],"exp":-1,"nbf":"x"}`))
	f.Add([]byte(`{"active":true}{"active":true}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	in := &Introspector{opts: IntrospectionOptions{Audience: testAudience, Issuer: testIssuer, RolesClaim: "roles", Leeway: 30 * time.Second}}
	f.Fuzz(func(t *testing.T, body []byte) {
		claims, err := parseIntrospection(body)
		if err != nil {
			return
		}
		p, exp, err := in.check(claims, now)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) || p != nil {
				t.Fatalf("check: %v, %v", p, err)
			}
			return
		}
		// Whatever is accepted was active, for us, unexpired, and names a subject.
		aud, _ := stringList(claims["aud"])
		if claims["active"] != true || !slices.Contains(aud, testAudience) || p.ID == "" || p.Method != MethodOAuth ||
			(!exp.IsZero() && !now.Before(exp.Add(30*time.Second))) {
			t.Fatalf("accepted %s as %+v (exp %v)", body, p, exp)
		}
	})
}
