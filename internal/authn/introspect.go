package authn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/secret"
)

// ErrUnavailable is an authentication that could not be decided because the
// authorization server did not answer (down, slow, saturated, or a garbled
// answer). It is not the client's fault, so it is no 401: a client told its
// token is invalid would throw a good token away.
var ErrUnavailable = errors.New("authorization server unavailable: retry shortly")

// Introspection defaults.
const (
	// DefaultNegativeTTL is how long an inactive or refused token's answer
	// is reused: long enough that a client retrying a dead token in a loop
	// costs the authorization server one request per interval, short enough
	// that a token activated a moment later works soon.
	DefaultNegativeTTL = 10 * time.Second
	// DefaultQueueWait is how long a lookup waits for one of the
	// max_concurrent request slots before giving up with ErrUnavailable.
	DefaultQueueWait = 2 * time.Second
)

// IntrospectionOptions configure an Introspector.
type IntrospectionOptions struct {
	URL          string
	ClientID     string
	ClientSecret secret.Secret
	// Audience is mcpgate's resource identifier: the answer's aud must be
	// present and contain it.
	Audience string
	// Issuer, if set, must equal the answer's iss when it carries one.
	Issuer     string
	RolesClaim string
	Leeway     time.Duration
	// CacheTTL bounds the reuse of an active answer (never past its exp).
	CacheTTL time.Duration
	// CacheSize bounds the active answers kept, and separately the
	// negative ones, so a flood of unknown tokens cannot evict the answers
	// for valid ones.
	CacheSize int
	// NegativeTTL: 0 means DefaultNegativeTTL.
	NegativeTTL time.Duration
	// MaxConcurrent bounds the requests to the authorization server in
	// flight at once.
	MaxConcurrent int
	// QueueWait: 0 means DefaultQueueWait.
	QueueWait time.Duration
	Fetcher   FetcherOptions
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Introspector authenticates opaque bearer tokens by asking the
// authorization server (RFC 7662), with a bounded cache keyed by the token's
// SHA-256, coalescing of concurrent lookups of one token, and a cap on the
// requests in flight.
type Introspector struct {
	opts     IntrospectionOptions
	fetcher  *Fetcher
	positive *lruCache
	negative *lruCache
	flights  flightGroup
	slots    chan struct{} // a buffered semaphore of MaxConcurrent
}

// NewIntrospector returns an introspector; nothing is fetched until a token
// arrives.
func NewIntrospector(o IntrospectionOptions) (*Introspector, error) {
	if o.URL == "" || o.ClientID == "" || o.ClientSecret.IsZero() || o.Audience == "" {
		return nil, errors.New("introspection: url, client_id, client_secret and audience are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RolesClaim == "" {
		o.RolesClaim = "roles"
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.QueueWait <= 0 {
		o.QueueWait = DefaultQueueWait
	}
	if o.CacheTTL <= 0 || o.CacheSize <= 0 || o.MaxConcurrent <= 0 {
		return nil, errors.New("introspection: cache_ttl, cache_size and max_concurrent must be positive")
	}
	f := NewFetcher(o.Fetcher)
	if _, err := f.checkURL(o.URL); err != nil {
		return nil, fmt.Errorf("introspection: url: %w", err)
	}
	return &Introspector{
		opts:     o,
		fetcher:  f,
		positive: newLRUCache(o.CacheSize),
		negative: newLRUCache(o.CacheSize),
		slots:    make(chan struct{}, o.MaxConcurrent),
	}, nil
}

// Verify returns the principal of an opaque token, from the cache or the
// authorization server.
func (in *Introspector) Verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" || len(token) > maxTokenBytes {
		return nil, invalidToken("malformed")
	}
	k := tokenKey(sha256.Sum256([]byte(token)))
	if p, err, ok := in.cached(k); ok {
		return p, err
	}
	return in.flights.do(k, func() (*Principal, error) {
		// A flight that ended while this one was starting may have filled
		// the cache.
		if p, err, ok := in.cached(k); ok {
			return p, err
		}
		p, exp, err := in.introspect(ctx, token)
		now := in.opts.Now()
		switch {
		case err == nil:
			ttl := in.opts.CacheTTL
			if !exp.IsZero() {
				ttl = min(ttl, exp.Sub(now))
			}
			if ttl > 0 {
				in.positive.put(&cacheEntry{key: k, p: p, expires: now.Add(ttl)})
			}
		case errors.Is(err, ErrInvalidToken):
			in.negative.put(&cacheEntry{key: k, err: err, expires: now.Add(in.opts.NegativeTTL)})
		}
		return p, err
	})
}

// cached returns a live cached answer for k. A cached principal is copied,
// so no request can change what another one sees.
func (in *Introspector) cached(k tokenKey) (*Principal, error, bool) {
	now := in.opts.Now()
	if e, ok := in.positive.get(k, now); ok {
		p := *e.p
		return &p, nil, true
	}
	if e, ok := in.negative.get(k, now); ok {
		return nil, e.err, true
	}
	return nil, nil, false
}

// introspect asks the authorization server about token, within the cap on
// requests in flight. exp is the token's expiry, zero if it names none.
func (in *Introspector) introspect(ctx context.Context, token string) (p *Principal, exp time.Time, err error) {
	wait := time.NewTimer(in.opts.QueueWait)
	defer wait.Stop()
	select {
	case in.slots <- struct{}{}:
	case <-wait.C:
		in.opts.Logger.Warn("token introspection refused: too many introspection requests in flight",
			"max_concurrent", in.opts.MaxConcurrent)
		return nil, time.Time{}, ErrUnavailable
	case <-ctx.Done():
		return nil, time.Time{}, ErrUnavailable
	}
	defer func() { <-in.slots }()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	// The request is the gateway's, shared by every waiter of the flight:
	// the first client hanging up must not abort it (the fetcher's timeout
	// bounds it).
	body, err := in.fetcher.PostForm(context.WithoutCancel(ctx), in.opts.URL, form, in.opts.ClientID, in.opts.ClientSecret.Reveal())
	if err != nil {
		in.opts.Logger.Warn("token introspection failed", "error", err)
		return nil, time.Time{}, ErrUnavailable
	}
	claims, err := parseIntrospection(body)
	if err != nil {
		in.opts.Logger.Warn("token introspection answer unusable", "url", in.opts.URL, "error", err)
		return nil, time.Time{}, ErrUnavailable
	}
	return in.check(claims, in.opts.Now())
}

// errNotObject and errNoActive are parse failures of an answer.
var (
	errNotObject = errors.New("parse introspection answer: not a JSON object")
	errNoActive  = errors.New("parse introspection answer: no boolean \"active\"")
)

// parseIntrospection decodes an RFC 7662 answer. It must be one JSON object
// with a boolean "active"; numbers are kept as json.Number so that exp and
// nbf are read exactly.
func parseIntrospection(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, fmt.Errorf("parse introspection answer: %w", err)
	}
	if claims == nil {
		return nil, errNotObject
	}
	if dec.More() {
		return nil, errors.New("parse introspection answer: data after the object")
	}
	if _, ok := claims["active"].(bool); !ok {
		return nil, errNoActive
	}
	return claims, nil
}

// check decides an answer: active, in its validity window, for this
// audience and issuer, and naming a subject.
func (in *Introspector) check(c map[string]any, now time.Time) (*Principal, time.Time, error) {
	if active, _ := c["active"].(bool); !active {
		return nil, time.Time{}, invalidToken("inactive")
	}
	if tt, ok := c["token_type"].(string); ok && strings.EqualFold(tt, "refresh_token") {
		return nil, time.Time{}, invalidToken("not an access token")
	}
	exp, ok := numericDate(c["exp"])
	if !ok {
		return nil, time.Time{}, invalidToken("exp is not a number")
	}
	nbf, ok := numericDate(c["nbf"])
	if !ok {
		return nil, time.Time{}, invalidToken("nbf is not a number")
	}
	leeway := in.opts.Leeway
	if !exp.IsZero() && !now.Before(exp.Add(leeway)) {
		return nil, time.Time{}, invalidToken("expired")
	}
	if !nbf.IsZero() && now.Add(leeway).Before(nbf) {
		return nil, time.Time{}, invalidToken("not valid yet")
	}
	aud, ok := stringList(c["aud"])
	switch {
	case !ok:
		return nil, time.Time{}, invalidToken("aud is not a string or list of strings")
	case len(aud) == 0:
		// RFC 7662 makes aud optional, but MCP requires the audience to be
		// checked: an answer that does not say whom the token is for could
		// be for any resource of the authorization server.
		return nil, time.Time{}, invalidToken("missing audience")
	case !slices.Contains(aud, in.opts.Audience):
		return nil, time.Time{}, invalidToken("wrong audience")
	}
	if in.opts.Issuer != "" {
		if iss, present := c["iss"]; present && iss != in.opts.Issuer {
			return nil, time.Time{}, invalidToken("wrong issuer")
		}
	}
	p, err := principalFromClaims(c, in.opts.RolesClaim)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !exp.IsZero() {
		p.Expires = exp.Add(leeway)
	}
	return p, exp, nil
}

// numericDate reads an absent (zero time) or numeric NumericDate claim.
func numericDate(v any) (time.Time, bool) {
	if v == nil {
		return time.Time{}, true
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}
