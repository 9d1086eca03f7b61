package authn

import (
	"context"
	"testing"
	"time"
)

// BenchmarkVerifyJWT measures one bearer JWT check with the JWKS cache warm
// (the steady state: no network), per signature algorithm.
func BenchmarkVerifyJWT(b *testing.B) {
	keys := []testKey{newRSAKey(b, "rsa"), newECKey(b, "ec"), newEdKey(b, "ed")}
	is := newIssuer(b, keys...)
	clk := &clock{now: time.Now()}
	v := newVerifier(b, is, clk, nil)
	for _, tt := range []struct {
		name string
		key  testKey
	}{{"RS256", keys[0]}, {"ES256", keys[1]}, {"EdDSA", keys[2]}} {
		token := sign(b, tt.key, baseClaims(clk.Now()), nil)
		if _, err := v.Verify(context.Background(), token); err != nil { // warms the cache
			b.Fatal(err)
		}
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIntrospectionCacheHit measures an opaque token answered from the
// introspection cache (the authorization server is not asked).
func BenchmarkIntrospectionCacheHit(b *testing.B) {
	as := newAuthServer(b)
	clk := &clock{now: time.Now()}
	in := newIntrospector(b, as, clk, nil)
	const token = "opaque-benchmark-token-0123456789abcdef"
	as.set(token, activeAnswer(clk.Now(), nil))
	if _, err := in.Verify(context.Background(), token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in.Verify(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
	if n := as.requests.Load(); n != 1 {
		b.Fatalf("%d introspection requests, want 1", n)
	}
}

// BenchmarkAPIKeyLookup is the baseline: one API key among ten, compared
// in constant time with each.
func BenchmarkAPIKeyLookup(b *testing.B) {
	var all []string
	for range 10 {
		k, _ := NewKey()
		all = append(all, k)
	}
	a := newKeys(b, all...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.lookup(all[7]); err != nil {
			b.Fatal(err)
		}
	}
}
