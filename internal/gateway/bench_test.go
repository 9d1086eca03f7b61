package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/demo"
)

// BenchmarkCall measures one modern tools/call through the whole gateway
// against the same call to a bare SDK handler serving the same demo server,
// in the same run: the ratio of the two is the gateway's cost.
func BenchmarkCall(b *testing.B) {
	body := modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"hello"}`)
	run := func(b *testing.B, url, key string) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				if key != "" {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				modernHeaders("tools/call", "echo")(req)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
	b.Run("bare", func(b *testing.B) {
		s := demo.New(slog.New(slog.DiscardHandler)).Server()
		h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
			&mcp.StreamableHTTPOptions{Stateless: true, PropagateRequestCancellation: true})
		srv := httptest.NewServer(h)
		defer srv.Close()
		run(b, srv.URL, "")
	})
	b.Run("gateway", func(b *testing.B) {
		tg := newTestGateway(b, func(c *config.Config) {
			// Limits on, but high enough never to refuse: their cost is measured.
			c.Limits.PerPrincipal = config.PrincipalLimits{Rate: 1e6, Burst: 1_000_000, Concurrent: 1_000_000}
			c.Limits.ConcurrentTotal = 1_000_000
		})
		run(b, tg.URL, tg.keyA)
	})
}
