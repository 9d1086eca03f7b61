//go:build linux

package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestEgressThroughTheSandbox: with network.allow, a tool inside the
// sandbox reaches an allowed host service through the proxy the gateway
// serves on the sandbox's own loopback, and nothing else: a CONNECT to
// another port is refused by the proxy (and that server sees no
// connection), a direct connection to the allowed service is refused by
// the sandbox. HTTP_PROXY is set for the tool.
func TestEgressThroughTheSandbox(t *testing.T) {
	needFull(t)
	var allowedHits, deniedHits atomic.Int32
	serve := func(hits *atomic.Int32) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			fmt.Fprint(w, "hello from the host")
		}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	allowed, denied := serve(&allowedHits), serve(&deniedHits)
	spec := probeSpec(t, "egress", "ALLOWED_ADDR="+allowed, "DENIED_ADDR="+denied)
	spec.Allow = []string{allowed}
	r := run(t, spec, 30*time.Second)
	for check, want := range map[string]string{
		"proxy env":      "http://127.0.0.1:3128",
		"allowed":        "200 hello from the host",
		"denied":         "403",
		"direct allowed": "refused",
	} {
		if got := r.lines[check]; !strings.HasPrefix(got, want) {
			t.Errorf("%s: %q, want %q\n%s%s", check, got, want, r.stdout, r.stderr)
		}
	}
	if allowedHits.Load() != 1 || deniedHits.Load() != 0 {
		t.Errorf("host servers saw %d (allowed) and %d (denied) requests, want 1 and 0", allowedHits.Load(), deniedHits.Load())
	}
}

// probeEgress tunnels an HTTP request through the egress proxy to
// ALLOWED_ADDR and DENIED_ADDR, and tries ALLOWED_ADDR directly.
func probeEgress() {
	report("proxy env", os.Getenv("HTTPS_PROXY"))
	report("allowed", tunnelGet("127.0.0.1:3128", os.Getenv("ALLOWED_ADDR")))
	report("denied", tunnelGet("127.0.0.1:3128", os.Getenv("DENIED_ADDR")))
	if c, err := net.DialTimeout("tcp", os.Getenv("ALLOWED_ADDR"), 2*time.Second); err == nil {
		c.Close()
		report("direct allowed", "ALLOWED")
	} else {
		report("direct allowed", "refused: "+err.Error())
	}
}

// tunnelGet opens a CONNECT tunnel (what every proxy-aware client uses for
// https) through proxy to target and sends a GET through it. It reports
// "<status> <body>" of the tunnelled answer, or the proxy's own status when
// it refuses the tunnel.
func tunnelGet(proxy, target string) string {
	if proxy == "" {
		return "no proxy configured"
	}
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		return "proxy unreachable: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return "no answer: " + err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprint(resp.StatusCode)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target)
	inner, err := http.ReadResponse(br, nil)
	if err != nil {
		return "tunnel: " + err.Error()
	}
	defer inner.Body.Close()
	body, _ := io.ReadAll(inner.Body)
	return fmt.Sprintf("%d %s", inner.StatusCode, body)
}
