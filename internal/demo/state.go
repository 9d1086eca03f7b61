package demo

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

// The requestState a multi round-trip handler hands to the client comes back
// as attacker-controlled input, and our handlers branch on it (which round
// they are in, what earlier rounds answered). So it is sealed: a versioned
// JSON payload, base64url-encoded, followed by an HMAC-SHA256 tag over that
// encoding under a key that never leaves the process. The payload names the
// operation it belongs to, carries an expiry and a nonce, and a nonce is
// accepted once only.

const (
	// stateVersion is bumped whenever statePayload changes incompatibly.
	stateVersion = 1
	// stateTTL bounds how long a client may take to answer an input request.
	stateTTL = 5 * time.Minute
	// stateKeyBytes is the HMAC key size; RFC 2104 asks for at least the
	// hash output length.
	stateKeyBytes = sha256.Size
	// stateSeparator joins the encoded payload and its tag. It is not in the
	// base64url alphabet, so it cannot occur inside either part.
	stateSeparator = "."
	// stateMACContext domain-separates these tags from any other use of the key.
	stateMACContext = "mcpgate/demo/requestState/v1\x00"
)

var (
	errStateMalformed = errors.New("requestState is malformed")
	errStateForged    = errors.New("requestState failed its integrity check")
	errStateExpired   = errors.New("requestState has expired")
	errStateOperation = errors.New("requestState belongs to a different request")
	errStateReplayed  = errors.New("requestState was already used")
)

// statePayload is what a sealed requestState carries.
type statePayload struct {
	Version   int               `json:"v"`
	Operation string            `json:"op"`
	Step      int               `json:"step"`
	Data      map[string]string `json:"data,omitempty"`
	ExpiresAt int64             `json:"exp"`
	Nonce     string            `json:"nonce"`
}

// stateSealer seals and opens requestState values and remembers which nonces
// have been spent until they expire.
type stateSealer struct {
	key []byte
	now func() time.Time

	mu        sync.Mutex
	spent     map[string]time.Time // nonce -> expiry
	nextSweep time.Time
}

// newStateSealer returns a sealer with a fresh random key, so states minted
// by one process (or one Demo) are worthless to any other.
func newStateSealer(now func() time.Time) *stateSealer {
	key := make([]byte, stateKeyBytes)
	// crypto/rand.Read never returns an error on supported platforms; it
	// crashes the program rather than hand out a weak key.
	_, _ = rand.Read(key)
	return &stateSealer{key: key, now: now, spent: make(map[string]time.Time)}
}

// seal returns an opaque requestState for step of operation op, carrying data.
func (s *stateSealer) seal(op string, step int, data map[string]string) (string, error) {
	payload := statePayload{
		Version:   stateVersion,
		Operation: op,
		Step:      step,
		Data:      data,
		ExpiresAt: s.now().Add(stateTTL).Unix(),
		Nonce:     rand.Text(), // 128 random bits
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("encode request state: %w", err)
	}
	body := base64.RawURLEncoding.EncodeToString(raw)
	return body + stateSeparator + base64.RawURLEncoding.EncodeToString(s.tag(body)), nil
}

// open verifies a requestState minted for operation op and spends its nonce.
// The tag is checked before the payload is even decoded, so nothing an
// attacker writes is parsed unless it was minted here.
func (s *stateSealer) open(op, state string) (*statePayload, error) {
	body, tagText, ok := strings.Cut(state, stateSeparator)
	if !ok {
		return nil, errStateMalformed
	}
	tag, err := base64.RawURLEncoding.DecodeString(tagText)
	if err != nil {
		return nil, errStateForged
	}
	if !hmac.Equal(tag, s.tag(body)) {
		return nil, errStateForged
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, errStateMalformed
	}
	var payload statePayload
	if err := json.Unmarshal(raw, &payload); err != nil || payload.Version != stateVersion {
		return nil, errStateMalformed
	}
	if payload.Operation != op {
		return nil, errStateOperation
	}
	expiresAt := time.Unix(payload.ExpiresAt, 0)
	if !s.now().Before(expiresAt) {
		return nil, errStateExpired
	}
	if !s.spend(payload.Nonce, expiresAt) {
		return nil, errStateReplayed
	}
	return &payload, nil
}

// tag is the HMAC-SHA256 of the encoded payload.
func (s *stateSealer) tag(body string) []byte {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(stateMACContext))
	mac.Write([]byte(body))
	return mac.Sum(nil)
}

// spend records nonce as used until expiresAt and reports whether it was
// unused. Expired nonces are swept at most once per stateTTL, which bounds the
// set to the states minted in roughly two TTLs.
func (s *stateSealer) spend(nonce string, expiresAt time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.After(s.nextSweep) {
		for n, exp := range s.spent {
			if now.After(exp) {
				delete(s.spent, n)
			}
		}
		s.nextSweep = now.Add(stateTTL)
	}
	if _, used := s.spent[nonce]; used {
		return false
	}
	s.spent[nonce] = expiresAt
	return true
}
