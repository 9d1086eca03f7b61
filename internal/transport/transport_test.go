package transport

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
)

func TestHostGuard(t *testing.T) {
	loopback := NewHostGuard(config.Listen{Address: "127.0.0.1:8443"}, false)
	public := NewHostGuard(config.Listen{
		Address:        "0.0.0.0:8443",
		AllowedHosts:   []string{"mcp.example.com", "other.example.com:9000"},
		AllowedOrigins: []string{"https://app.example.com"},
	}, true)
	tests := []struct {
		name         string
		g            *HostGuard
		host, origin string
		ok           bool
	}{
		{"loopback name", loopback, "localhost:8443", "", true},
		{"loopback v4", loopback, "127.0.0.1:8443", "", true},
		{"loopback v6", loopback, "[::1]:8443", "", true},
		{"loopback without port", loopback, "localhost", "", true},
		{"rebinding name on loopback", loopback, "evil.example.com:8443", "", false},
		{"rebinding name with its own origin", loopback, "evil.example.com", "http://evil.example.com", false},
		{"empty host", loopback, "", "", false},
		{"same origin", loopback, "localhost:8443", "http://localhost:8443", true},
		{"same origin, other case", loopback, "LOCALHOST:8443", "http://localhost:8443", true},
		{"cross origin", loopback, "localhost:8443", "http://evil.example.com", false},
		{"https origin on a plaintext listener", loopback, "localhost:8443", "https://localhost:8443", false},
		{"null origin", loopback, "localhost:8443", "null", false},
		{"configured host", public, "mcp.example.com", "", true},
		{"configured host any port", public, "mcp.example.com:443", "", true},
		{"configured host:port", public, "other.example.com:9000", "", true},
		{"configured host, other port", public, "other.example.com:9001", "", false},
		{"loopback names not allowed when hosts configured", public, "localhost:8443", "", false},
		{"allowed origin", public, "mcp.example.com", "https://app.example.com", true},
		{"same origin with TLS", public, "mcp.example.com", "https://mcp.example.com", true},
		{"unlisted origin", public, "mcp.example.com", "https://evil.example.com", false},
		{"suffix trick", public, "mcp.example.com.evil.net", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.CheckHost(tt.host)
			if err == nil {
				err = tt.g.CheckOrigin(tt.origin, tt.host)
			}
			if (err == nil) != tt.ok {
				t.Fatalf("host %q origin %q: err = %v, want ok=%v", tt.host, tt.origin, err, tt.ok)
			}
		})
	}
}

func TestHostGuardWrapRejectsWith403(t *testing.T) {
	g := NewHostGuard(config.Listen{Address: "127.0.0.1:8443"}, false)
	reached := false
	h := g.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }), slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		host    string
		origins []string
	}{
		{"evil.example.com", nil},
		{"localhost", []string{"http://evil.example.com"}},
		{"localhost", []string{"http://localhost", "http://localhost"}},
	} {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.Host = tc.host
		for _, o := range tc.origins {
			r.Header.Add("Origin", o)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden || reached {
			t.Fatalf("host %q origins %v: status %d reached=%v, want 403 and not reached", tc.host, tc.origins, w.Code, reached)
		}
		var body struct {
			ID    any `json:"id"`
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		b, _ := io.ReadAll(w.Body)
		if err := json.Unmarshal(b, &body); err != nil || body.Error.Code != CodeInvalidRequest || body.Error.Message == "" || body.ID != nil {
			t.Fatalf("body %s is not a JSON-RPC error with a null id", b)
		}
	}
}

// FuzzHostGuard checks the property that matters: on a loopback listener
// with no configured hosts, only loopback names ever pass, whatever the
// Host header looks like.
func FuzzHostGuard(f *testing.F) {
	for _, s := range []string{"localhost:1", "[::1]:1", "127.0.0.1", "evil.com", "localhost.evil.com", "LOCALHOST", "[::1]", "::1", "localhost:"} {
		f.Add(s, "")
	}
	f.Add("localhost:1", "http://localhost:1")
	g := NewHostGuard(config.Listen{Address: "127.0.0.1:1"}, false)
	f.Fuzz(func(t *testing.T, host, origin string) {
		if g.CheckHost(host) != nil {
			return
		}
		name := strings.ToLower(host)
		if h, _, err := net.SplitHostPort(name); err == nil {
			name = h
		}
		name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
		if name != "localhost" && name != "127.0.0.1" && name != "::1" {
			t.Fatalf("CheckHost accepted %q", host)
		}
		if origin != "" && g.CheckOrigin(origin, host) == nil && !strings.EqualFold(origin, "http://"+host) {
			t.Fatalf("CheckOrigin accepted %q for host %q", origin, host)
		}
	})
}

// TestHostGuardCheck: Check decides a whole request: the Host first, then
// the Origin, and two Origin headers are refused whatever they say.
func TestHostGuardCheck(t *testing.T) {
	g := NewHostGuard(config.Listen{Address: "127.0.0.1:1", AllowedOrigins: []string{"https://app.example"}}, false)
	for _, tt := range []struct {
		name    string
		host    string
		origins []string
		want    error
	}{
		{"loopback, no origin", "localhost:1", nil, nil},
		{"own origin", "localhost:1", []string{"http://localhost:1"}, nil},
		{"allowed origin", "127.0.0.1:1", []string{"https://app.example"}, nil},
		{"foreign host", "evil.example", nil, ErrHost},
		{"foreign host and origin: the host is named", "evil.example", []string{"https://evil.example"}, ErrHost},
		{"cross-site origin", "localhost:1", []string{"https://evil.example"}, ErrOrigin},
		{"null origin", "localhost:1", []string{"null"}, ErrOrigin},
		{"two origins", "localhost:1", []string{"http://localhost:1", "http://localhost:1"}, ErrOrigin},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://"+tt.host+"/mcp", nil)
			r.Host = tt.host
			for _, o := range tt.origins {
				r.Header.Add("Origin", o)
			}
			if got := g.Check(r); got != tt.want {
				t.Fatalf("Check = %v, want %v", got, tt.want)
			}
		})
	}
}
