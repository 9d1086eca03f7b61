package transport

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/mcpgate/mcpgate/internal/config"
)

// loopbackHosts are the Host names accepted on a loopback listener when the
// config names none.
var loopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// HostGuard enforces the Host and Origin allowlists on every request.
// Host stops DNS rebinding (a browser tricked into calling a loopback server
// under an attacker's name); Origin stops cross-site requests from pages.
type HostGuard struct {
	hosts   map[string]bool // "host" (any port) or "host:port", lower case
	origins map[string]bool
	tls     bool
}

// NewHostGuard builds the guard from the listen config.
func NewHostGuard(l config.Listen, tls bool) *HostGuard {
	g := &HostGuard{hosts: map[string]bool{}, origins: map[string]bool{}, tls: tls}
	hosts := l.AllowedHosts
	if len(hosts) == 0 {
		hosts = loopbackHosts
	}
	for _, h := range hosts {
		g.hosts[normalizeHost(h)] = true
	}
	for _, o := range l.AllowedOrigins {
		g.origins[o] = true
	}
	return g
}

// normalizeHost lower-cases and strips IPv6 brackets of a bare host, so
// "[::1]" and "::1" name the same thing.
func normalizeHost(h string) string {
	h = strings.ToLower(h)
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		return h[1 : len(h)-1]
	}
	return h
}

// The errors of Check. The admin listener tells them to the client, after
// "forbidden: "; the gateway names the refused value too.
var (
	ErrHost   = errors.New("the Host header is not allowed")
	ErrOrigin = errors.New("the Origin header is not allowed")
)

// CheckHost decides whether a Host header value is allowed.
func (g *HostGuard) CheckHost(host string) error {
	host = strings.ToLower(host)
	if host == "" {
		return ErrHost
	}
	if g.hosts[host] {
		return nil
	}
	name, _, err := net.SplitHostPort(host)
	if err != nil {
		name = host // no port
	}
	if g.hosts[normalizeHost(name)] {
		return nil
	}
	return ErrHost
}

// CheckOrigin decides whether a request with this Origin (possibly empty)
// and this already-allowed Host may proceed. A missing Origin is a
// non-browser client; a present one must be the request's own origin or an
// allowed one. "null" (sandboxed or file pages) is never allowed.
func (g *HostGuard) CheckOrigin(origin, host string) error {
	if origin == "" {
		return nil
	}
	if g.origins[origin] {
		return nil
	}
	scheme := "http://"
	if g.tls {
		scheme = "https://"
	}
	if strings.EqualFold(origin, scheme+host) {
		return nil
	}
	return ErrOrigin
}

// Check decides a request: nil, ErrHost or ErrOrigin. More than one
// Origin header is refused (which one would a browser have meant?).
func (g *HostGuard) Check(r *http.Request) error {
	origins := r.Header.Values("Origin")
	switch {
	case len(origins) > 1:
		return ErrOrigin
	case g.CheckHost(r.Host) != nil:
		return ErrHost
	}
	return g.CheckOrigin(r.Header.Get("Origin"), r.Host)
}

// Wrap returns next behind the guard; refusals are 403 and logged. The
// gateway's MCP endpoint does not use it: its refusals are audited, and
// their records budgeted, like every other refusal of its front.
func (g *HostGuard) Wrap(next http.Handler, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.Check(r); err != nil {
			logger.Warn("request refused", "reason", err.Error(), "host", r.Host, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
			Reject(w, http.StatusForbidden, CodeInvalidRequest, "forbidden: "+err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}
