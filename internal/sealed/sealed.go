// Package sealed mints and opens integrity-protected, expiring, single-use
// tokens: the requestState an MCP server hands a client between rounds of a
// multi round-trip request. What comes back is attacker-controlled input, so
// nothing in it is parsed unless this process minted it.
package sealed

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// A sealed state is a versioned JSON payload, base64url-encoded, followed by
// an HMAC-SHA256 tag over that encoding under a key that never leaves the
// process. The payload names the operation it belongs to, carries an expiry
// and a nonce, and a nonce is accepted once only.

const (
	// version is bumped whenever Payload changes incompatibly.
	version = 1
	// TTL bounds how long a client may take to answer an input request.
	TTL = 5 * time.Minute
	// keyBytes is the HMAC key size; RFC 2104 asks for at least the
	// hash output length.
	keyBytes = sha256.Size
	// separator joins the encoded payload and its tag. It is not in the
	// base64url alphabet, so it cannot occur inside either part.
	separator = "."
)

var (
	ErrMalformed = errors.New("requestState is malformed")
	ErrForged    = errors.New("requestState failed its integrity check")
	ErrExpired   = errors.New("requestState has expired")
	ErrOperation = errors.New("requestState belongs to a different request")
	ErrReplayed  = errors.New("requestState was already used")
)

// Payload is what a sealed requestState carries.
type Payload struct {
	Version   int               `json:"v"`
	Operation string            `json:"op"`
	Step      int               `json:"step"`
	Data      map[string]string `json:"data,omitempty"`
	ExpiresAt int64             `json:"exp"`
	Nonce     string            `json:"nonce"`
}

// Sealer seals and opens requestState values and remembers which nonces
// have been spent until they expire.
type Sealer struct {
	key    []byte
	domain string // domain-separates these tags from any other use of a key
	now    func() time.Time

	mu        sync.Mutex
	spent     map[string]time.Time // nonce -> expiry
	nextSweep time.Time
}

// New returns a sealer with a fresh random key, so states minted by one
// process (or one Sealer) are worthless to any other. domain names the use
// ("mcpgate/demo/requestState/v1"); now is the clock (time.Now).
func New(domain string, now func() time.Time) *Sealer {
	key := make([]byte, keyBytes)
	// crypto/rand.Read never returns an error on supported platforms; it
	// crashes the program rather than hand out a weak key.
	_, _ = rand.Read(key)
	return &Sealer{key: key, domain: domain + "\x00", now: now, spent: make(map[string]time.Time)}
}

// Seal returns an opaque requestState for step of operation op, carrying data.
func (s *Sealer) Seal(op string, step int, data map[string]string) (string, error) {
	payload := Payload{
		Version:   version,
		Operation: op,
		Step:      step,
		Data:      data,
		ExpiresAt: s.now().Add(TTL).Unix(),
		Nonce:     rand.Text(), // 128 random bits
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("encode request state: %w", err)
	}
	body := base64.RawURLEncoding.EncodeToString(raw)
	return body + separator + base64.RawURLEncoding.EncodeToString(s.tag(body)), nil
}

// Open verifies a requestState minted for operation op and spends its nonce.
// The tag is checked before the payload is even decoded, so nothing an
// attacker writes is parsed unless it was minted here.
func (s *Sealer) Open(op, state string) (*Payload, error) {
	body, tagText, ok := strings.Cut(state, separator)
	if !ok {
		return nil, ErrMalformed
	}
	tag, err := base64.RawURLEncoding.DecodeString(tagText)
	if err != nil {
		return nil, ErrForged
	}
	if !hmac.Equal(tag, s.tag(body)) {
		return nil, ErrForged
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, ErrMalformed
	}
	var payload Payload
	if err := json.Unmarshal(raw, &payload); err != nil || payload.Version != version {
		return nil, ErrMalformed
	}
	if payload.Operation != op {
		return nil, ErrOperation
	}
	expiresAt := time.Unix(payload.ExpiresAt, 0)
	if !s.now().Before(expiresAt) {
		return nil, ErrExpired
	}
	if !s.spend(payload.Nonce, expiresAt) {
		return nil, ErrReplayed
	}
	return &payload, nil
}

// tag is the HMAC-SHA256 of the encoded payload.
func (s *Sealer) tag(body string) []byte {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(s.domain))
	mac.Write([]byte(body))
	return mac.Sum(nil)
}

// spend records nonce as used until expiresAt and reports whether it was
// unused. Expired nonces are swept at most once per TTL, which bounds the
// set to the states minted in roughly two TTLs.
func (s *Sealer) spend(nonce string, expiresAt time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.After(s.nextSweep) {
		for n, exp := range s.spent {
			if now.After(exp) {
				delete(s.spent, n)
			}
		}
		s.nextSweep = now.Add(TTL)
	}
	if _, used := s.spent[nonce]; used {
		return false
	}
	s.spent[nonce] = expiresAt
	return true
}
