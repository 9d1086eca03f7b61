package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
)

// syncBuffer is a log sink written from the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pinnedClient trusts exactly the certificate with this fingerprint, the way
// an operator uses the fingerprint `mcpgate serve` prints.
func pinnedClient(fingerprint string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // replaced by the pin below
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				sum := sha256.Sum256(raw[0])
				if got := fmt.Sprintf("% X", sum[:]); strings.ReplaceAll(got, " ", ":") != fingerprint {
					return errors.New("certificate fingerprint does not match the pin")
				}
				return nil
			},
		}},
	}
}

func TestServeSelfSignedTLS(t *testing.T) {
	key, digest := authn.NewKey()
	cfg := config.Default()
	cfg.Listen.Address = "127.0.0.1:0"
	cfg.Admin.Address = "127.0.0.1:0"
	cfg.Listen.TLS = &config.TLS{SelfSigned: true}
	cfg.Auth.APIKeys = []config.APIKey{{ID: "alice", SHA256: digest}}
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatal(ps)
	}
	logs := &syncBuffer{}
	g, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if g.TLSFingerprint() == "" {
		t.Fatal("no fingerprint for a self-signed certificate")
	}
	ln := serveOn(t, g)
	url := g.EndpointURL(ln)
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("endpoint %q, want https://", url)
	}

	client := pinnedClient(g.TLSFingerprint())
	call := func(origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(modernBody(1, "tools/list", "")))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+key)
		modernHeaders("tools/list", "")(req)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("call over TLS: %v", err)
		}
		resp.Body.Close()
		return resp
	}
	resp := call("")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 || resp.Proto != "HTTP/1.1" {
		t.Fatalf("connection state %+v proto %s, want TLS 1.3 and HTTP/1.1", resp.TLS, resp.Proto)
	}
	// Same-origin is https:// now; the http:// origin of the same host is another origin.
	host := strings.TrimPrefix(strings.TrimSuffix(url, EndpointPath), "https://")
	if got := call("https://" + host).StatusCode; got != http.StatusOK {
		t.Fatalf("same https origin: status %d, want 200", got)
	}
	if got := call("http://" + host).StatusCode; got != http.StatusForbidden {
		t.Fatalf("http origin on a TLS listener: status %d, want 403", got)
	}

	// A plaintext request to the TLS port gets no MCP answer.
	plain := &http.Client{Timeout: 30 * time.Second}
	if resp, err := plain.Get("http://" + host + EndpointPath); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plaintext request to the TLS listener: status %d", resp.StatusCode)
		}
	}
	if !strings.Contains(logs.String(), "endpoint="+url) {
		t.Fatalf("the serving log line does not name the https endpoint:\n%s", logs.String())
	}
}

func TestInsecurePlaintextIsWarned(t *testing.T) {
	_, digest := authn.NewKey()
	cfg := config.Default()
	cfg.Listen.Address = "10.0.0.1:8443"
	cfg.Listen.AllowedHosts = []string{"mcp.example.com"}
	cfg.Auth.APIKeys = []config.APIKey{{ID: "alice", SHA256: digest}}
	if ps := cfg.Validate(); len(ps) == 0 {
		t.Fatal("a non-loopback address without TLS validated")
	}
	cfg.Listen.InsecurePlaintext = true
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatal(ps)
	}
	logs := &syncBuffer{}
	g, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// Serve on loopback (the test cannot bind 10.0.0.1); the warning is about
	// the configured address. A done context makes Serve start and stop.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Serve(ctx, ln); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "listen.insecure_plaintext") {
		t.Fatalf("no warning about plaintext on a non-loopback address:\n%s", logs.String())
	}
}

func TestNewRefusesUnreadableTLSFiles(t *testing.T) {
	_, digest := authn.NewKey()
	cfg := config.Default()
	cfg.Listen.TLS = &config.TLS{Cert: t.TempDir() + "/missing.pem", Key: t.TempDir() + "/missing.key"}
	cfg.Auth.APIKeys = []config.APIKey{{ID: "alice", SHA256: digest}}
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "listen.tls.cert") {
		t.Fatalf("New = %v, want an error naming listen.tls.cert", err)
	}
}

// TestSilentTLSClientIsCutOff: a client that opens a connection and never
// starts the handshake is dropped by the header timeout, as on plaintext.
func TestSilentTLSClientIsCutOff(t *testing.T) {
	addr, _ := servedGateway(t, func(c *config.Config) {
		c.Listen.TLS = &config.TLS{SelfSigned: true}
		c.Listen.ReadHeaderTimeout = 200 * time.Millisecond
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := outcome(t, c); got != "closed" {
		t.Fatalf("silent client got %q, want the connection closed", got)
	}
}
