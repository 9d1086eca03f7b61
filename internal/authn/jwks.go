package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"
)

// UnknownKidInterval is the least time between two JWKS fetches; in
// particular a token naming an unknown key id triggers at most one refetch
// per interval, so a flood of bad tokens cannot make mcpgate hammer the issuer.
const UnknownKidInterval = 30 * time.Second

// maxJWKSKeys bounds the keys taken from one JWKS.
const maxJWKSKeys = 64

// minRSABits is the smallest RSA modulus accepted from a JWKS.
const minRSABits = 2048

// jwk is one usable public key from a JWKS.
type jwk struct {
	alg string // "" when the JWK names none
	key crypto.PublicKey
}

// jwksCache holds the issuer's keys by kid: fetched on first use, refetched
// when older than refresh, and when a token names an unknown kid, but never
// more often than minInterval. When a refetch fails the keys in hand stay.
type jwksCache struct {
	url         string
	fetch       func(ctx context.Context, url string) ([]byte, error)
	now         func() time.Time
	refresh     time.Duration
	minInterval time.Duration
	logger      *slog.Logger

	fetchMu sync.Mutex // one fetch at a time; held across the fetch

	mu          sync.Mutex
	keys        map[string]jwk
	fetchedAt   time.Time // last successful fetch
	lastAttempt time.Time // last fetch attempt, successful or not
	attempted   bool
}

// errUnknownKey is an internal reason; clients see ErrInvalidToken.
var errUnknownKey = errors.New("unknown key id")

func (c *jwksCache) lookup(kid string) (k jwk, ok, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok = c.keys[kid]
	fresh = c.keys != nil && c.now().Sub(c.fetchedAt) < c.refresh
	return k, ok, fresh
}

// key returns the key with id kid, refetching the set when it is stale or
// lacks kid, within the refetch limit.
func (c *jwksCache) key(ctx context.Context, kid string) (jwk, error) {
	if k, ok, fresh := c.lookup(kid); ok && fresh {
		return k, nil
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	// Another request may have refetched while this one waited.
	k, ok, fresh := c.lookup(kid)
	if ok && fresh {
		return k, nil
	}
	c.mu.Lock()
	now := c.now()
	mayFetch := !c.attempted || now.Sub(c.lastAttempt) >= c.minInterval
	if mayFetch {
		c.attempted, c.lastAttempt = true, now
	}
	c.mu.Unlock()
	if mayFetch {
		keys, err := c.load(ctx)
		if err != nil {
			c.logger.Warn("JWKS fetch failed; keeping the keys in hand", "url", c.url, "error", err)
		} else {
			c.mu.Lock()
			c.keys, c.fetchedAt = keys, c.now()
			c.mu.Unlock()
			c.logger.Info("JWKS fetched", "url", c.url, "keys", len(keys))
		}
		k, ok, _ = c.lookup(kid)
	}
	if !ok {
		return jwk{}, errUnknownKey
	}
	return k, nil
}

func (c *jwksCache) load(ctx context.Context) (map[string]jwk, error) {
	// The fetch is the gateway's, not the request's: a client hanging up
	// must not abort it (the fetcher's own timeout bounds it).
	body, err := c.fetch(context.WithoutCancel(ctx), c.url)
	if err != nil {
		return nil, err
	}
	return parseJWKS(body)
}

// rawJWK is a JWK's public members (RFC 7517, 7518, 8037). Private members
// are never read.
type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS returns the set's usable signature keys by kid. A key that is
// not for signatures, has no kid, or has an unsupported type or bad
// parameters is skipped; a set with no usable key is an error.
func parseJWKS(body []byte) (map[string]jwk, error) {
	var set struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	keys := map[string]jwk{}
	for _, r := range set.Keys {
		if len(keys) == maxJWKSKeys {
			break
		}
		if r.Kid == "" || (r.Use != "" && r.Use != "sig") {
			continue
		}
		if _, dup := keys[r.Kid]; dup {
			continue // the first key with an id wins
		}
		pub, err := r.publicKey()
		if err != nil {
			continue
		}
		keys[r.Kid] = jwk{alg: r.Alg, key: pub}
	}
	if len(keys) == 0 {
		return nil, errors.New("parse JWKS: no usable signature key")
	}
	return keys, nil
}

func (r rawJWK) publicKey() (crypto.PublicKey, error) {
	switch r.Kty {
	case "RSA":
		n, err1 := b64(r.N)
		e, err2 := b64(r.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA parameters")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits || pub.E < 3 || pub.E%2 == 0 {
			return nil, errors.New("weak RSA key")
		}
		return pub, nil
	case "EC":
		var curve elliptic.Curve
		switch r.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, errors.New("unsupported curve")
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err1 := b64(r.X)
		y, err2 := b64(r.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad EC parameters")
		}
		point := append(append([]byte{4}, x...), y...)
		return ecdsa.ParseUncompressedPublicKey(curve, point) // checks the point is on the curve
	case "OKP":
		x, err := b64(r.X)
		if r.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad OKP parameters")
		}
		return ed25519.PublicKey(x), nil
	default:
		return nil, errors.New("unsupported key type")
	}
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
