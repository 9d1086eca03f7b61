package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Fetcher defaults.
const (
	DefaultFetchTimeout  = 10 * time.Second
	DefaultFetchMaxBytes = 1 << 20
)

// FetcherOptions configure a Fetcher.
type FetcherOptions struct {
	// AllowLoopback lets the fetcher connect to loopback addresses and use
	// plain http to a loopback host. Only for tests and local development
	// (auth.jwt.insecure_allow_http_loopback_issuer).
	AllowLoopback bool
	// RootCAs replaces the system roots; tests use it to trust an
	// httptest TLS server. nil means the system roots.
	RootCAs *x509.CertPool
	// Timeout bounds one whole fetch; 0 means DefaultFetchTimeout.
	Timeout time.Duration
	// MaxBytes caps a response body; 0 means DefaultFetchMaxBytes.
	MaxBytes int64
}

// Fetcher makes the outbound requests mcpgate itself decides to make (the
// issuer's JWKS), safe against server-side request forgery: https only, no
// redirects, no proxy, and after DNS resolution no connection to loopback,
// private, link-local, shared (CGNAT), multicast or unspecified addresses,
// which covers cloud metadata endpoints (169.254.169.254, fd00:ec2::254).
// The address check runs on the address actually dialled, so a DNS answer
// that changes between check and use cannot slip through.
type Fetcher struct {
	client   *http.Client
	opts     FetcherOptions
	maxBytes int64
}

// ErrForbiddenAddress is returned for a fetch to an address that is refused.
var ErrForbiddenAddress = errors.New("address refused (loopback, private, link-local or metadata)")

// NewFetcher returns a Fetcher.
func NewFetcher(o FetcherOptions) *Fetcher {
	if o.Timeout <= 0 {
		o.Timeout = DefaultFetchTimeout
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultFetchMaxBytes
	}
	dialer := &net.Dialer{
		Timeout: o.Timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, ErrForbiddenAddress)
			}
			if !AllowedAddr(ap.Addr(), o.AllowLoopback) {
				return fmt.Errorf("dial %s: %w", ap.Addr(), ErrForbiddenAddress)
			}
			return nil
		},
	}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would be dialled instead of the checked address
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		MaxIdleConns:           2,
		IdleConnTimeout:        time.Minute,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
	}
	return &Fetcher{
		opts:     o,
		maxBytes: o.MaxBytes,
		client: &http.Client{
			Transport: transport,
			Timeout:   o.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return errors.New("redirects are not followed")
			},
		},
	}
}

// AllowedAddr reports whether an outbound connection to ip is allowed.
// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
func AllowedAddr(ip netip.Addr, allowLoopback bool) bool {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast(),
		ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsPrivate():
		return false
	case ip.IsLoopback():
		return allowLoopback
	}
	for _, p := range refusedPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// refusedPrefixes are ranges beyond the netip predicates: "this network",
// shared address space (CGNAT, also some clouds' metadata), benchmarking,
// reserved, and IPv6 ranges that embed or reach IPv4 internals.
var refusedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2002::/16"),       // 6to4 can embed a private IPv4
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
}

// checkURL refuses what may not be fetched before any connection is made.
func (f *Fetcher) checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("fetch: %q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !f.opts.AllowLoopback || !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("fetch %s: only https is allowed", u.Redacted())
		}
	default:
		return nil, fmt.Errorf("fetch %s: only https is allowed", u.Redacted())
	}
	// A literal address is refused here already, with a clearer message.
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !AllowedAddr(ip, f.opts.AllowLoopback) {
		return nil, fmt.Errorf("fetch %s: %w", u.Redacted(), ErrForbiddenAddress)
	}
	return u, nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.Unmap().IsLoopback()
}

// Get fetches raw with GET and returns its body; anything but 200, a body
// over the cap, a redirect or a refused address is an error.
func (f *Fetcher) Get(ctx context.Context, raw string) ([]byte, error) {
	u, err := f.checkURL(raw)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u.Redacted(), err)
	}
	return f.do(req, u)
}

// PostForm POSTs form to raw with HTTP Basic credentials (RFC 6749
// client_secret_basic: both parts form-urlencoded first) and returns the
// body, under the same rules as Get. Errors never contain the form, which
// may carry a token.
func (f *Fetcher) PostForm(ctx context.Context, raw string, form url.Values, user, password string) ([]byte, error) {
	u, err := f.checkURL(raw)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u.Redacted(), err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(password))
	return f.do(req, u)
}

func (f *Fetcher) do(req *http.Request, u *url.URL) ([]byte, error) {
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		// *url.Error names the method, the URL and the cause, never the body.
		return nil, fmt.Errorf("fetch %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: status %d", u.Redacted(), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u.Redacted(), err)
	}
	if int64(len(body)) > f.maxBytes {
		return nil, fmt.Errorf("fetch %s: response larger than %d bytes", u.Redacted(), f.maxBytes)
	}
	return body, nil
}
