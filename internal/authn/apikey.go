package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
)

// KeyPrefix marks mcpgate API keys, so secret scanners can find leaked ones.
const KeyPrefix = "mgk_"

// APIKey is one configured key: only the SHA-256 of the key is held.
type APIKey struct {
	ID     string
	SHA256 [sha256.Size]byte
	Roles  []string
}

// APIKeys authenticates callers by a bearer API key.
type APIKeys struct {
	keys []APIKey
}

// NewAPIKeys builds the authenticator from hex SHA-256 digests.
func NewAPIKeys(ids, hexDigests []string, roles [][]string) (*APIKeys, error) {
	a := &APIKeys{}
	for i, h := range hexDigests {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("decode api key digest for %q: not 64 hex digits", ids[i])
		}
		k := APIKey{ID: ids[i], Roles: roles[i]}
		copy(k.SHA256[:], b)
		a.keys = append(a.keys, k)
	}
	return a, nil
}

// Authenticate checks the request's bearer key against every configured key.
func (a *APIKeys) Authenticate(r *http.Request) (*Principal, error) {
	token, err := BearerToken(r)
	if err != nil {
		return nil, err
	}
	return a.lookup(token)
}

// lookup compares the token's digest with every key, always all of them and
// in constant time each, so timing says nothing about which key was close.
func (a *APIKeys) lookup(token string) (*Principal, error) {
	sum := sha256.Sum256([]byte(token))
	match := -1
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].SHA256[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return nil, ErrUnknownCredentials
	}
	k := a.keys[match]
	return &Principal{ID: k.ID, Roles: k.Roles, Method: MethodAPIKey}, nil
}

// keyEntropyBytes is 256 bits: a key can be stored as a plain SHA-256
// because brute force over that space is out of reach.
const keyEntropyBytes = 32

// NewKey returns a fresh API key and the hex SHA-256 to put in config.
func NewKey() (key, digest string) {
	b := make([]byte, keyEntropyBytes)
	rand.Read(b) // crypto/rand.Read never fails (it panics on broken systems).
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	return key, hex.EncodeToString(sum[:])
}

// Anonymous authenticates every request as one anonymous principal. It is
// what auth.insecure_disable_auth selects, on a loopback listener only.
type Anonymous struct{}

// Authenticate never fails.
func (Anonymous) Authenticate(*http.Request) (*Principal, error) {
	return &Principal{ID: "anonymous", Method: MethodNone}, nil
}
