package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// egressLeakCheck verifies, after every other cleanup of the test, that no
// goroutine started during the test is left.
func egressLeakCheck(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// egressTestListener records the remote address of every accepted connection, in
// order, so a test can tell whether the proxy ever connected.
type egressTestListener struct {
	net.Listener
	mu       sync.Mutex
	accepted []string
}

func (l *egressTestListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.accepted = append(l.accepted, c.RemoteAddr().String())
		l.mu.Unlock()
	}
	return c, err
}

// acceptsBefore dials the listener itself and waits until that connection is
// accepted; it returns how many connections were accepted before it. Accept
// order is connection order, so a connection the proxy made earlier is
// counted: no sleeping, no race.
func (l *egressTestListener) acceptsBefore(t *testing.T) int {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	me := c.LocalAddr().String()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		i := slices.Index(l.accepted, me)
		l.mu.Unlock()
		if i >= 0 {
			return i
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("own connection never accepted")
	return 0
}

func (l *egressTestListener) port() int { return l.Addr().(*net.TCPAddr).Port }

func egressListen(t testing.TB) *egressTestListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &egressTestListener{Listener: ln}
}

// egressStartEcho starts a TCP echo server on loopback: it echoes until EOF, then
// closes.
func egressStartEcho(t testing.TB) *egressTestListener {
	t.Helper()
	ln := egressListen(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln
}

// egressUpstream is a plain HTTP server that records the last request's
// headers and answers with the request line and body.
type egressUpstream struct {
	*httptest.Server
	ln *egressTestListener
	mu sync.Mutex
	// last request seen
	header http.Header
	host   string
}

func egressStartUpstream(t testing.TB) *egressUpstream {
	t.Helper()
	u := &egressUpstream{ln: egressListen(t)}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.header = r.Header.Clone()
		u.host = r.Host
		u.mu.Unlock()
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Upstream", "yes")
		fmt.Fprintf(w, "upstream saw %s %s body=%q", r.Method, r.RequestURI, body)
	}))
	u.Listener = u.ln
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func (u *egressUpstream) lastHeader() (http.Header, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.header, u.host
}

// egressDialRecorder is an egressProxy.dial hook: it records every address the
// proxy dials and connects to redirect[address] if set (fake public
// addresses), to the address itself otherwise.
type egressDialRecorder struct {
	mu       sync.Mutex
	dialled  []string
	redirect map[string]string
}

func (d *egressDialRecorder) dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.dialled = append(d.dialled, address)
	to, ok := d.redirect[address]
	d.mu.Unlock()
	if !ok {
		to = address
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, to)
}

// reset returns the addresses dialled so far and forgets them.
func (d *egressDialRecorder) reset() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.dialled
	d.dialled = nil
	return out
}

func (d *egressDialRecorder) addrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.dialled)
}

type egressRefusal struct{ target, reason string }

type egressTestProxy struct {
	addr string
	p    *egressProxy
	dr   *egressDialRecorder

	mu       sync.Mutex
	refusals []egressRefusal
}

func (tp *egressTestProxy) refusalList() []egressRefusal {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return slices.Clone(tp.refusals)
}

// egressStartProxy serves an egressProxy for allow on a loopback listener until the
// test ends; the test fails if serve does not return promptly after its
// context is cancelled, or returns an error. setup may change fields before
// serve starts.
func egressStartProxy(t testing.TB, allow []string, setup func(*egressProxy)) *egressTestProxy {
	t.Helper()
	p, err := newEgressProxy(allow, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tp := &egressTestProxy{p: p, dr: &egressDialRecorder{redirect: map[string]string{}}}
	p.dial = tp.dr.dial
	p.refused = func(target, reason string) {
		tp.mu.Lock()
		tp.refusals = append(tp.refusals, egressRefusal{target, reason})
		tp.mu.Unlock()
	}
	if setup != nil {
		setup(p)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("serve did not return after its context was cancelled")
		}
	})
	return tp
}

func egressDialProxy(t testing.TB, tp *egressTestProxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// egressRoundTrip sends raw to the proxy on a new connection and reads one response.
func egressRoundTrip(t *testing.T, tp *egressTestProxy, raw string) (*http.Response, string) {
	t.Helper()
	c := egressDialProxy(t, tp)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

func egressHostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func TestEgressConnect(t *testing.T) {
	egressLeakCheck(t)
	allowed := egressStartEcho(t)
	other := egressStartEcho(t)
	tp := egressStartProxy(t, []string{egressHostPort(allowed.port())}, nil)

	t.Run("allowed tunnels both ways", func(t *testing.T) {
		before := allowed.acceptsBefore(t)
		c := egressDialProxy(t, tp)
		// Bytes sent right behind the CONNECT (as TLS clients do) must reach
		// the upstream too.
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\nearly;", egressHostPort(allowed.port()))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, more than any buffer
		go func() {
			_, _ = c.Write(big)
			_ = c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(br) // EOF only if the half-close went through
		if err != nil {
			t.Fatal(err)
		}
		if want := append([]byte("early;"), big...); !bytes.Equal(got, want) {
			t.Fatalf("echoed %d bytes, want %d identical", len(got), len(want))
		}
		if n := allowed.acceptsBefore(t) - before; n != 2 { // the proxy's and the previous acceptsBefore's
			t.Fatalf("upstream accepted %d connections, want 2", n)
		}
	})

	for _, tc := range []struct {
		name, target string
		code         int
		reason       string
	}{
		{"other port", egressHostPort(other.port()), 403, egressRefusedNotAllowed},
		{"name for an allowed IP", net.JoinHostPort("localhost", strconv.Itoa(allowed.port())), 403, egressRefusedNotAllowed},
		{"IPv6 loopback for an allowed IPv4", net.JoinHostPort("::1", strconv.Itoa(allowed.port())), 403, egressRefusedNotAllowed},
		{"no port", "127.0.0.1", 400, egressRefusedBadRequest},
		{"path", "/" + egressHostPort(allowed.port()), 400, egressRefusedBadRequest},
		{"userinfo", "user@" + egressHostPort(allowed.port()), 400, egressRefusedBadRequest},
		{"port out of range", "127.0.0.1:99999", 400, egressRefusedBadRequest},
	} {
		t.Run("refused "+tc.name, func(t *testing.T) {
			beforeA, beforeO := allowed.acceptsBefore(t), other.acceptsBefore(t)
			nRefused := len(tp.refusalList())
			resp, body := egressRoundTrip(t, tp, "CONNECT "+tc.target+" HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.code, body)
			}
			if tc.code == 403 && !strings.Contains(body, "egress to "+tc.target+" is not allowed") {
				t.Errorf("body %q does not name %s as not allowed", body, tc.target)
			}
			// acceptsBefore's own connection is the one accepted in between.
			if n := allowed.acceptsBefore(t) - beforeA; n != 1 {
				t.Errorf("allowed server accepted %d connections from the proxy", n-1)
			}
			if n := other.acceptsBefore(t) - beforeO; n != 1 {
				t.Errorf("other server accepted %d connections from the proxy", n-1)
			}
			r := tp.refusalList()[nRefused:]
			if len(r) != 1 || r[0].reason != tc.reason {
				t.Errorf("refused hook got %v, want one %q", r, tc.reason)
			}
		})
	}
}

func TestEgressHTTPForward(t *testing.T) {
	egressLeakCheck(t)
	up := egressStartUpstream(t)
	other := egressStartUpstream(t)
	target := egressHostPort(up.ln.port())
	tp := egressStartProxy(t, []string{target}, nil)

	for _, tc := range []struct {
		name     string
		raw      string
		code     int
		body     string // substring of the response body
		upstream bool   // whether up must have seen one connection
	}{
		{"GET", "GET http://" + target + "/hello?x=1 HTTP/1.1\r\nHost: ignored\r\n\r\n", 200,
			`upstream saw GET /hello?x=1 body=""`, true},
		{"HTTP/1.0 GET", "GET http://" + target + "/ HTTP/1.0\r\n\r\n", 200, `upstream saw GET / body=""`, true},
		{"POST with length", "POST http://" + target + "/p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 200,
			`upstream saw POST /p body="hello"`, true},
		{"POST chunked", "POST http://" + target + "/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 200,
			`upstream saw POST /c body="abcde"`, true},
		{"expect continue", "PUT http://" + target + "/e HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok", 100, "", true},
		{"uppercase host", "GET http://" + strings.ToUpper("127.0.0.1") + ":" + strconv.Itoa(up.ln.port()) + "/ HTTP/1.1\r\n\r\n", 200, "upstream saw", true},
		{"denied port", "GET http://" + egressHostPort(other.ln.port()) + "/ HTTP/1.1\r\n\r\n", 403,
			"egress to " + egressHostPort(other.ln.port()) + " is not allowed", false},
		{"denied default port", "GET http://127.0.0.1/ HTTP/1.1\r\n\r\n", 403, "egress to 127.0.0.1:80 is not allowed", false},
		{"origin-form", "GET /hello HTTP/1.1\r\nHost: " + target + "\r\n\r\n", 400, "absolute", false},
		{"https URI", "GET https://" + target + "/ HTTP/1.1\r\n\r\n", 400, "CONNECT", false},
		{"other scheme", "GET ftp://" + target + "/ HTTP/1.1\r\n\r\n", 400, "http://", false},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: " + target + "\r\n\r\n", 400, "absolute", false},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "", false},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "malformed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, beforeOther := up.ln.acceptsBefore(t), other.ln.acceptsBefore(t)
			resp, body := egressRoundTrip(t, tp, tc.raw)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body, tc.code, tc.body)
			}
			if resp.StatusCode == 200 && resp.Header.Get("X-Upstream") != "yes" {
				t.Errorf("upstream response header lost: %v", resp.Header)
			}
			want := 1
			if tc.upstream {
				want = 2
			}
			if n := up.ln.acceptsBefore(t) - before; n != want {
				t.Errorf("upstream accepted %d connections from the proxy, want %d", n-1, want-1)
			}
			if n := other.ln.acceptsBefore(t) - beforeOther; n != 1 {
				t.Errorf("the other server accepted %d connections from the proxy", n-1)
			}
		})
	}

	t.Run("HEAD gets no body", func(t *testing.T) {
		c := egressDialProxy(t, tp)
		fmt.Fprintf(c, "HEAD http://%s/h HTTP/1.1\r\n\r\n", target)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("got %v, %v; want 200", resp, err)
		}
		if resp.ContentLength <= 0 {
			t.Errorf("Content-Length %d, want the upstream's", resp.ContentLength)
		}
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Errorf("after the HEAD response: %q, %v; want EOF", rest, err)
		}
	})

	t.Run("expect continue then response", func(t *testing.T) {
		c := egressDialProxy(t, tp)
		fmt.Fprintf(c, "PUT http://%s/e HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n", target)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 100 {
			t.Fatalf("got %v, %v; want 100 Continue", resp, err)
		}
		io.WriteString(c, "ok")
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if want := `upstream saw PUT /e body="ok"`; string(body) != want {
			t.Fatalf("body %q, want %q", body, want)
		}
		h, _ := up.lastHeader()
		if h.Get("Expect") != "" {
			t.Errorf("Expect forwarded: %q", h.Get("Expect"))
		}
	})
}

func TestEgressHopByHopHeaders(t *testing.T) {
	egressLeakCheck(t)
	up := egressStartUpstream(t)
	target := egressHostPort(up.ln.port())
	tp := egressStartProxy(t, []string{target}, nil)
	resp, body := egressRoundTrip(t, tp, "GET http://"+target+"/h HTTP/1.1\r\n"+
		"Host: elsewhere.example\r\n"+
		"Connection: keep-alive, X-Hop\r\n"+
		"X-Hop: secret-hop\r\n"+
		"Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA==\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"Keep-Alive: 300\r\n"+
		"Te: trailers\r\n"+
		"Upgrade: websocket\r\n"+
		"Trailer: X-T\r\n"+
		"X-Keep: kept\r\n"+
		"User-Agent: tool/1\r\n"+
		"\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	h, host := up.lastHeader()
	for _, name := range []string{"X-Hop", "Proxy-Authorization", "Proxy-Connection", "Keep-Alive", "Te", "Upgrade", "Trailer"} {
		if v, ok := h[name]; ok {
			t.Errorf("%s forwarded: %q", name, v)
		}
	}
	if got := h.Values("Connection"); !slices.Equal(got, []string{"close"}) {
		t.Errorf("Connection %q, want only the proxy's own close", got)
	}
	if h.Get("X-Keep") != "kept" || h.Get("User-Agent") != "tool/1" {
		t.Errorf("end-to-end headers lost: %v", h)
	}
	if host != target {
		t.Errorf("upstream Host %q, want the URI's %q", host, target)
	}
	if resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop response header Keep-Alive relayed")
	}

	// Without a User-Agent, none is added.
	egressRoundTrip(t, tp, "GET http://"+target+"/ HTTP/1.1\r\n\r\n")
	if h, _ := up.lastHeader(); h.Get("User-Agent") != "" {
		t.Errorf("proxy added User-Agent %q", h.Get("User-Agent"))
	}
}

// TestEgressResolution covers DNS-name entries: resolved in the gateway,
// refused when any address is not public, dialled at exactly the checked
// address.
func TestEgressResolution(t *testing.T) {
	egressLeakCheck(t)
	up := egressStartUpstream(t)
	port := strconv.Itoa(up.ln.port())

	t.Run("localhost is refused as loopback though allowed by name", func(t *testing.T) {
		tp := egressStartProxy(t, []string{"localhost:" + port}, nil) // the real resolver
		for _, raw := range []string{
			"CONNECT localhost:" + port + " HTTP/1.1\r\n\r\n",
			"GET http://LocalHost:" + port + "/ HTTP/1.1\r\n\r\n",
		} {
			resp, body := egressRoundTrip(t, tp, raw)
			if resp.StatusCode != 403 || !strings.Contains(body, "non-public address") {
				t.Errorf("%q: got %d %q, want 403 non-public", raw, resp.StatusCode, body)
			}
		}
		if got := tp.dr.addrs(); len(got) != 0 {
			t.Errorf("dialled %v", got)
		}
		if n := up.ln.acceptsBefore(t); n != 0 {
			t.Errorf("upstream accepted %d connections from the proxy", n)
		}
		want := []egressRefusal{{"localhost:" + port, egressRefusedPrivateAddress}, {"localhost:" + port, egressRefusedPrivateAddress}}
		if got := tp.refusalList(); !slices.Equal(got, want) {
			t.Errorf("refusals %v, want %v", got, want)
		}
	})

	t.Run("IP request does not match a name entry", func(t *testing.T) {
		tp := egressStartProxy(t, []string{"localhost:" + port}, nil)
		resp, _ := egressRoundTrip(t, tp, "CONNECT 127.0.0.1:"+port+" HTTP/1.1\r\n\r\n")
		if resp.StatusCode != 403 {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
		if got := tp.refusalList(); !slices.Equal(got, []egressRefusal{{"127.0.0.1:" + port, egressRefusedNotAllowed}}) {
			t.Errorf("refusals %v", got)
		}
	})

	for _, tc := range []struct {
		name     string
		resolved []string
		code     int
		dialled  []string
	}{
		{"public", []string{"192.0.2.10"}, 200, []string{"192.0.2.10:" + port}},
		{"public, first fails", []string{"2001:db8::1", "192.0.2.10"}, 200,
			[]string{"[2001:db8::1]:" + port, "192.0.2.10:" + port}},
		{"IPv4-mapped public dialled unmapped", []string{"::ffff:192.0.2.10"}, 200, []string{"192.0.2.10:" + port}},
		{"any private refuses", []string{"192.0.2.10", "10.0.0.1"}, 403, nil},
		{"metadata", []string{"169.254.169.254"}, 403, nil},
		{"IPv4-mapped loopback", []string{"::ffff:127.0.0.1"}, 403, nil},
		{"CGNAT", []string{"100.64.0.1"}, 403, nil},
		{"unique local", []string{"fd00::1"}, 403, nil},
		{"no address", nil, 502, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lookups []string
			tp := egressStartProxy(t, []string{"api.example.com:" + port}, func(p *egressProxy) {
				p.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
					lookups = append(lookups, host)
					var out []netip.Addr
					for _, s := range tc.resolved {
						out = append(out, netip.MustParseAddr(s))
					}
					return out, nil
				}
			})
			tp.dr.redirect["192.0.2.10:"+port] = up.ln.Addr().String()
			tp.dr.redirect["[2001:db8::1]:"+port] = "127.0.0.1:1" // refused
			resp, body := egressRoundTrip(t, tp, "GET http://API.example.com:"+port+"/r HTTP/1.1\r\n\r\n")
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tc.code)
			}
			if got := tp.dr.addrs(); !slices.Equal(got, tc.dialled) {
				t.Errorf("dialled %v, want %v", got, tc.dialled)
			}
			if !slices.Equal(lookups, []string{"api.example.com"}) {
				t.Errorf("lookups %v, want exactly one of the lowercased name", lookups)
			}
			if tc.code == 200 {
				if _, host := up.lastHeader(); host != "api.example.com:"+port {
					t.Errorf("upstream Host %q", host)
				}
			}
		})
	}

	t.Run("default port and Host header", func(t *testing.T) {
		tp := egressStartProxy(t, []string{"Example.COM:80"}, func(p *egressProxy) {
			p.lookup = func(context.Context, string) ([]netip.Addr, error) {
				return []netip.Addr{netip.MustParseAddr("192.0.2.10")}, nil
			}
		})
		tp.dr.redirect["192.0.2.10:80"] = up.ln.Addr().String()
		resp, body := egressRoundTrip(t, tp, "GET http://example.com/d HTTP/1.1\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d %q", resp.StatusCode, body)
		}
		if _, host := up.lastHeader(); host != "example.com" {
			t.Errorf("upstream Host %q, want example.com", host)
		}
	})
}

func TestEgressNonPublic(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		class string
	}{
		{"127.0.0.1", "loopback"},
		{"127.255.0.9", "loopback"},
		{"::1", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"fec0::1", "private"},
		{"169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"0.1.2.3", "reserved"},
		{"224.0.0.1", "link-local"},
		{"224.0.1.1", "multicast"},
		{"239.1.1.1", "multicast"},
		{"ff02::1", "link-local"},
		{"ff05::1", "multicast"},
		{"100.64.0.1", "shared address space (CGNAT)"},
		{"100.127.255.255", "shared address space (CGNAT)"},
		{"255.255.255.255", "reserved"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:169.254.169.254", "link-local"},
		{"::7f00:1", "reserved"},
		{"64:ff9b::a9fe:a9fe", "link-local"},
		{"64:ff9b:1::1", "private"},
		{"2002:7f00:1::", "loopback"},
		{"8.8.8.8", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"172.32.0.1", ""},
		{"192.0.2.1", ""},
		{"2606:4700::1111", ""},
		{"64:ff9b::808:808", ""},
		{"::ffff:8.8.8.8", ""},
	} {
		if got := egressNonPublic(netip.MustParseAddr(tc.addr)); got != tc.class {
			t.Errorf("egressNonPublic(%s) = %q, want %q", tc.addr, got, tc.class)
		}
	}
}

func TestNewEgressProxyEntries(t *testing.T) {
	for _, tc := range []struct {
		entry string
		err   string // "" when accepted
		key   string // canonical form when accepted
	}{
		{"", `sandbox.network.allow[1]: "": empty; want host:port`, ""},
		{"host", `sandbox.network.allow[1]: "host": want host:port (IPv6 in brackets)`, ""},
		{"host:0", `sandbox.network.allow[1]: "host:0": port 0 out of range 1-65535`, ""},
		{"host:70000", `sandbox.network.allow[1]: "host:70000": port 70000 out of range 1-65535`, ""},
		{"host:https", `sandbox.network.allow[1]: "host:https": port must be a number 1-65535`, ""},
		{"host:-1", `sandbox.network.allow[1]: "host:-1": port must be a number 1-65535`, ""},
		{"*.example.com:443", `sandbox.network.allow[1]: "*.example.com:443": wildcards are not supported; list each host:port`, ""},
		{"http://x:1", `sandbox.network.allow[1]: "http://x:1": a URL; want host:port without a scheme`, ""},
		{"::1:80", `sandbox.network.allow[1]: "::1:80": want host:port (IPv6 in brackets)`, ""},
		{"[1.2.3.4]:80", `sandbox.network.allow[1]: "[1.2.3.4]:80": brackets are for IPv6 addresses only`, ""},
		{"[fe80::1%eth0]:80", `sandbox.network.allow[1]: "[fe80::1%eth0]:80": IPv6 zones are not supported`, ""},
		{"[example.com]:80", `sandbox.network.allow[1]: "[example.com]:80": host is not a valid IPv6 address`, ""},
		{":80", `sandbox.network.allow[1]: ":80": empty host`, ""},
		{"exa mple.com:80", `sandbox.network.allow[1]: "exa mple.com:80": host is neither an IP address nor a DNS name`, ""},
		{"example.com.:80", `sandbox.network.allow[1]: "example.com.:80": host is neither an IP address nor a DNS name`, ""},
		{"-x.com:80", `sandbox.network.allow[1]: "-x.com:80": host is neither an IP address nor a DNS name`, ""},
		{"127.1:80", `sandbox.network.allow[1]: "127.1:80": host is neither an IP address nor a DNS name`, ""},
		{"01.2.3.4:80", `sandbox.network.allow[1]: "01.2.3.4:80": host is neither an IP address nor a DNS name`, ""},
		{"[::1]:80", "", "[::1]:80"},
		{"[::FFFF:1.2.3.4]:80", "", "1.2.3.4:80"},
		{"1.2.3.4:443", "", "1.2.3.4:443"},
		{"API.Example.com:443", "", "api.example.com:443"},
		{"my_host-1.internal:8080", "", "my_host-1.internal:8080"},
		{"localhost:65535", "", "localhost:65535"},
	} {
		p, err := newEgressProxy([]string{"ok.example:1", tc.entry}, nil)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q refused: %v", tc.entry, err)
		case tc.err == "" && !slices.Contains(slices.Collect(maps.Keys(p.allow)), tc.key):
			t.Errorf("%q: allow %v, want key %q", tc.entry, p.allow, tc.key)
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("%q: error %v, want %q", tc.entry, err, tc.err)
		}
	}
}

func TestEgressHeaderLimits(t *testing.T) {
	egressLeakCheck(t)
	echo := egressStartEcho(t)
	target := egressHostPort(echo.port())

	t.Run("oversized header", func(t *testing.T) {
		tp := egressStartProxy(t, []string{target}, nil)
		resp, _ := egressRoundTrip(t, tp, "CONNECT "+target+" HTTP/1.1\r\nX-Big: "+strings.Repeat("a", 32<<10)+"\r\n\r\n")
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", resp.StatusCode)
		}
		// Just under the cap still works.
		c := egressDialProxy(t, tp)
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nX-Big: %s\r\n\r\n", target, strings.Repeat("a", 15<<10))
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("15 KiB header: %v %v, want 200", resp, err)
		}
		if got := tp.refusalList(); !slices.Equal(got, []egressRefusal{{"", egressRefusedHeaderTooLarge}}) {
			t.Errorf("refusals %v", got)
		}
	})

	t.Run("header timeout", func(t *testing.T) {
		tp := egressStartProxy(t, []string{target}, func(p *egressProxy) { p.headerTimeout = 200 * time.Millisecond })
		c := egressDialProxy(t, tp)
		io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\n") // never finished
		start := time.Now()
		n, err := c.Read(make([]byte, 1))
		if n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("read %d, %v; want EOF", n, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("closed after %v", d)
		}
	})
}

func TestEgressConnectionLimit(t *testing.T) {
	egressLeakCheck(t)
	echo := egressStartEcho(t)
	target := egressHostPort(echo.port())
	tp := egressStartProxy(t, []string{target}, nil)

	// 63 idle connections and one tunnel: 64 in use.
	var held []net.Conn
	for range egressMaxConns - 1 {
		held = append(held, egressDialProxy(t, tp))
	}
	tunnel := egressDialProxy(t, tp)
	fmt.Fprintf(tunnel, "CONNECT %s HTTP/1.1\r\n\r\n", target)
	if resp, err := http.ReadResponse(bufio.NewReader(tunnel), &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("tunnel: %v %v", resp, err)
	}

	c := egressDialProxy(t, tp)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("65th connection: read %d, %v; want EOF at once", n, err)
	}
	if got := tp.refusalList(); !slices.Equal(got, []egressRefusal{{"", egressRefusedTooManyConns}}) {
		t.Errorf("refusals %v", got)
	}

	// A freed slot is reused.
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := egressDialProxy(t, tp)
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
		if err == nil && resp.StatusCode == 200 {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %v %v", resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEgressServeStops checks that cancelling serve's context closes the
// listener and every connection (idle, tunnel, forwarded request in flight)
// and leaves no goroutine.
func TestEgressServeStops(t *testing.T) {
	egressLeakCheck(t)
	echo := egressStartEcho(t)
	slow := egressListen(t) // accepts, never answers
	t.Cleanup(func() { slow.Close() })
	var slowConns []net.Conn
	var slowMu sync.Mutex
	var slowWG sync.WaitGroup
	slowWG.Go(func() {
		for {
			c, err := slow.Accept()
			if err != nil {
				return
			}
			slowMu.Lock()
			slowConns = append(slowConns, c)
			slowMu.Unlock()
		}
	})
	t.Cleanup(func() {
		slow.Close()
		slowWG.Wait()
		for _, c := range slowConns {
			c.Close()
		}
	})

	p, err := newEgressProxy([]string{egressHostPort(echo.port()), egressHostPort(slow.port())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.serve(ctx, ln) }()
	tp := &egressTestProxy{addr: ln.Addr().String()}

	idle := egressDialProxy(t, tp)
	tunnel := egressDialProxy(t, tp)
	fmt.Fprintf(tunnel, "CONNECT %s HTTP/1.1\r\n\r\n", egressHostPort(echo.port()))
	if resp, err := http.ReadResponse(bufio.NewReader(tunnel), &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("tunnel: %v %v", resp, err)
	}
	inFlight := egressDialProxy(t, tp)
	fmt.Fprintf(inFlight, "GET http://%s/ HTTP/1.1\r\n\r\n", egressHostPort(slow.port()))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		slowMu.Lock()
		n := len(slowConns)
		slowMu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("forwarded request never reached the upstream")
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return")
	}
	for name, c := range map[string]net.Conn{"idle": idle, "tunnel": tunnel, "in flight": inFlight} {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("%s connection: %v, want EOF", name, err)
		}
	}
	// The upstream side of the in-flight request is closed too.
	slowMu.Lock()
	sc := slowConns[0]
	slowMu.Unlock()
	_ = sc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadAll(sc); err != nil {
		t.Errorf("upstream connection: %v, want EOF", err)
	}
	if _, err := net.Dial("tcp", tp.addr); err == nil {
		t.Error("listener still open")
	}
}

func TestEgressServeListenerClosed(t *testing.T) {
	egressLeakCheck(t)
	p, err := newEgressProxy(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.serve(context.Background(), ln) }()
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("serve: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after its listener was closed")
	}
}

func TestEgressIdleTunnel(t *testing.T) {
	egressLeakCheck(t)
	echo := egressStartEcho(t)
	target := egressHostPort(echo.port())
	tp := egressStartProxy(t, []string{target}, func(p *egressProxy) { p.idleTimeout = 300 * time.Millisecond })
	c := egressDialProxy(t, tp)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\n\r\n", target)
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("tunnel: %v %v", resp, err)
	}
	// Traffic keeps it open well past the idle timeout.
	for range 8 {
		time.Sleep(100 * time.Millisecond)
		io.WriteString(c, "x")
		if b, err := br.ReadByte(); err != nil || b != 'x' {
			t.Fatalf("tunnel closed while in use: %v", err)
		}
	}
	start := time.Now()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("read %v, want EOF after idle timeout", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("closed after %v of silence, want about 300ms", d)
	}
}

// TestEgressHTTPClient drives the proxy with net/http's own client: HTTPS
// through CONNECT (the client verifies the upstream's own certificate, so the
// proxy cannot be intercepting TLS) and plain HTTP.
func TestEgressHTTPClient(t *testing.T) {
	egressLeakCheck(t)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secret over tls")
	}))
	t.Cleanup(tlsSrv.Close)
	up := egressStartUpstream(t)
	tlsHost := strings.TrimPrefix(tlsSrv.URL, "https://")
	tp := egressStartProxy(t, []string{tlsHost, egressHostPort(up.ln.port())}, nil)

	proxyURL := &url.URL{Scheme: "http", Host: tp.addr}
	tr := tlsSrv.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(proxyURL)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)

	for _, tc := range []struct{ url, want string }{
		{tlsSrv.URL + "/x", "secret over tls"},
		{"http://" + egressHostPort(up.ln.port()) + "/y", `upstream saw GET /y body=""`},
	} {
		resp, err := client.Get(tc.url)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want {
			t.Errorf("GET %s: %q, want %q", tc.url, body, tc.want)
		}
	}
}

// FuzzEgressRequest feeds arbitrary bytes to the proxy as a client
// connection. The proxy must not panic, must be done with the connection soon
// after the client has sent everything, and must look up and dial only what
// the allowlist permits.
func FuzzEgressRequest(f *testing.F) {
	up := egressStartUpstream(f)
	port := strconv.Itoa(up.ln.port())
	direct := egressHostPort(up.ln.port())
	permitted := map[string]bool{direct: true, "192.0.2.1:" + port: true, "[::1]:" + port: true}
	var mu sync.Mutex
	var badLookups []string
	tp := egressStartProxy(f, []string{direct, "allowed.test:" + port, "private.test:" + port, "[::1]:" + port},
		func(p *egressProxy) {
			p.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
				switch host {
				case "allowed.test":
					return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
				case "private.test":
					return []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.1.2.3")}, nil
				}
				mu.Lock()
				badLookups = append(badLookups, host)
				mu.Unlock()
				return nil, errors.New("no such host")
			}
			p.headerTimeout = 2 * time.Second
			p.idleTimeout = 2 * time.Second
		})
	tp.dr.redirect["192.0.2.1:"+port] = direct

	for _, seed := range []string{
		"CONNECT " + direct + " HTTP/1.1\r\nHost: x\r\n\r\nhello",
		"CONNECT allowed.test:" + port + " HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT private.test:" + port + " HTTP/1.1\r\n\r\n",
		"CONNECT [::1]:" + port + " HTTP/1.1\r\n\r\n",
		"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n",
		"CONNECT [::ffff:127.0.0.1]:" + port + " HTTP/1.1\r\n\r\n",
		"GET http://" + direct + "/a?b=c HTTP/1.1\r\nConnection: X\r\nX: y\r\n\r\n",
		"GET http://allowed.test:" + port + "/ HTTP/1.0\r\n\r\n",
		"POST http://" + direct + "/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST http://" + direct + "/ HTTP/1.1\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\nshort",
		"GET http://user:pw@allowed.test:" + port + "/ HTTP/1.1\r\n\r\n",
		"GET http://[::1]:" + port + "/ HTTP/1.1\r\n\r\n",
		"GET https://" + direct + "/ HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: " + direct + "\r\n\r\n",
		"GET http://evil.test:" + port + "/ HTTP/1.1\r\n\r\n",
		"GET http://127.0.0.1:" + port + "@evil.test/ HTTP/1.1\r\n\r\n",
		"CONNECT 127.0.0.1:" + port + "@evil.test:80 HTTP/1.1\r\n\r\n",
		"",
		"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", tp.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		var wg sync.WaitGroup
		wg.Go(func() {
			_, _ = c.Write(data)
			_ = c.(*net.TCPConn).CloseWrite()
		})
		_, err = io.Copy(io.Discard, c)
		wg.Wait()
		if egressIsTimeout(err) {
			t.Fatal("the proxy still held the connection 20s after the client finished sending")
		}
		for _, a := range tp.dr.reset() {
			if !permitted[a] {
				t.Errorf("dialled %s, which the allowlist does not permit", a)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(badLookups) > 0 {
			t.Errorf("looked up %q, which the allowlist does not name", badLookups)
			badLookups = nil
		}
	})
}
