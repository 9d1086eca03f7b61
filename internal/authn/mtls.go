package authn

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Certificate fields an mTLS mapping can name.
const (
	FieldCommonName = "common_name"
	FieldDNS        = "dns"
	FieldURI        = "uri"
	FieldEmail      = "email"
)

// Client certificate failures, safe to show a client.
var (
	ErrCertUnmapped  = errors.New("client certificate is verified but not mapped to a principal (auth.mtls)")
	ErrCertAmbiguous = errors.New("client certificate matches more than one principal (auth.mtls)")
	// ErrCertExpired is a certificate that was valid when its connection
	// was made, and has expired since: a kept-alive connection must not
	// outlive its credential.
	ErrCertExpired = errors.New("client certificate has expired since the connection was made")
)

// CertMapping maps one exact certificate field value to a principal.
type CertMapping struct {
	ID    string
	Roles []string
	Field string // one of the Field* constants
	Value string
}

// MTLS authenticates a request by its verified TLS client certificate. The
// TLS layer (listen.tls.client_ca) has already verified the chain; MTLS only
// maps the verified leaf to a configured principal.
type MTLS struct {
	byField map[string]map[string]int // field -> value -> index into mappings
	mapping []CertMapping
	now     func() time.Time // time.Now; tests set it
}

// NewMTLS returns the mapper; a duplicate field value or an unknown field is
// an error (config validation refuses both first).
func NewMTLS(ms []CertMapping) (*MTLS, error) {
	m := &MTLS{byField: map[string]map[string]int{}, mapping: ms, now: time.Now}
	for i, c := range ms {
		switch c.Field {
		case FieldCommonName, FieldDNS, FieldURI, FieldEmail:
		default:
			return nil, fmt.Errorf("mtls mapping %q: unknown field %q", c.ID, c.Field)
		}
		v := normalize(c.Field, c.Value)
		if m.byField[c.Field] == nil {
			m.byField[c.Field] = map[string]int{}
		}
		if _, dup := m.byField[c.Field][v]; dup {
			return nil, fmt.Errorf("mtls mapping %q: %s %q is mapped twice", c.ID, c.Field, c.Value)
		}
		m.byField[c.Field][v] = i
	}
	return m, nil
}

// normalize makes DNS names compare case-insensitively (RFC 4343); every
// other field compares exactly.
func normalize(field, v string) string {
	if field == FieldDNS {
		return strings.ToLower(v)
	}
	return v
}

// Authenticate maps the request's verified client certificate. Only a leaf
// the TLS layer verified (VerifiedChains) counts, never a merely presented
// one (PeerCertificates).
//
// The TLS layer checks validity once, at the handshake; a kept-alive
// connection can carry requests long after. So every request checks the
// verified chain again, and the principal expires with the first of its
// certificates to expire.
func (m *MTLS) Authenticate(r *http.Request) (*Principal, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, ErrNoCredentials
	}
	chain := r.TLS.VerifiedChains[0]
	expires := chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotAfter.Before(expires) {
			expires = c.NotAfter
		}
	}
	if m.now().After(expires) {
		return nil, ErrCertExpired
	}
	p, err := m.Map(chain[0])
	if err != nil {
		return nil, err
	}
	p.Expires = expires
	return p, nil
}

// Map returns the principal of a verified leaf certificate: the mapping its
// subject common name or one of its DNS, URI or email SANs names. A
// certificate that names two different principals is refused rather than
// resolved by some order the operator never chose.
func (m *MTLS) Map(leaf *x509.Certificate) (*Principal, error) {
	match := -1
	try := func(field, v string) bool {
		i, ok := m.byField[field][normalize(field, v)]
		if !ok {
			return true
		}
		if match >= 0 && match != i {
			return false
		}
		match = i
		return true
	}
	ok := try(FieldCommonName, leaf.Subject.CommonName)
	for _, d := range leaf.DNSNames {
		ok = try(FieldDNS, d) && ok
	}
	for _, u := range leaf.URIs {
		ok = try(FieldURI, u.String()) && ok
	}
	for _, e := range leaf.EmailAddresses {
		ok = try(FieldEmail, e) && ok
	}
	switch {
	case !ok:
		return nil, ErrCertAmbiguous
	case match < 0:
		return nil, ErrCertUnmapped
	}
	c := m.mapping[match]
	return &Principal{ID: c.ID, Roles: c.Roles, Method: MethodMTLS}, nil
}
