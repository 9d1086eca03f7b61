package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of one egress proxy (one sandbox).
const (
	egressMaxConns       = 64
	egressHeaderTimeout  = 10 * time.Second
	egressMaxHeaderBytes = 16 << 10
	egressDialTimeout    = 10 * time.Second
	egressIdleTimeout    = 5 * time.Minute
	// egressMaxRespHeader caps the response header an allowed upstream may
	// send on a forwarded plain-HTTP request (http.ReadResponse has no cap).
	egressMaxRespHeader = 64 << 10
	// egressReplyTimeout bounds writing the proxy's own short replies, and
	// draining what the client still sends after a refusal (so that closing
	// does not reset the connection before the client reads the reply).
	egressReplyTimeout = time.Second
)

// Reasons passed to egressProxy.refused and logged with "egress refused".
// They are few and constant, fit for a metric label.
const (
	egressRefusedNotAllowed     = "not_allowed"
	egressRefusedPrivateAddress = "private_address"
	egressRefusedTooManyConns   = "too_many_connections"
	egressRefusedBadRequest     = "bad_request"
	egressRefusedHeaderTooLarge = "header_too_large"
)

// egressProxy is the allowlisting forward proxy one sandbox's tool reaches at
// 127.0.0.1:3128 inside its network namespace.
//
// It serves HTTP CONNECT tunnels (never intercepting TLS) and absolute-URI
// plain-HTTP requests, one request per client connection. A target must match
// an allow entry exactly (host case-insensitively, port exactly); a DNS name
// is resolved here, refused if any of its addresses is not public, and the
// checked address is the one dialled.
type egressProxy struct {
	// allow holds canonical "host:port" entries: a lowercase DNS name, or
	// an IP literal in netip's form (IPv4-mapped unmapped). A DNS name never
	// parses as an IP, so a request naming an IP literal can only match an
	// IP-literal entry, and a request naming a DNS name only a DNS entry.
	allow  map[string]struct{}
	logger *slog.Logger

	// dial opens the upstream connection; address is always "ip:port".
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	// lookup resolves an allowed DNS name.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// refused, if set before serve, is called on every refusal with the
	// target ("host:port", or "" when there is none) and one of the
	// egressRefused* reasons.
	refused func(target, reason string)

	maxConns       int
	headerTimeout  time.Duration
	maxHeaderBytes int64
	dialTimeout    time.Duration
	idleTimeout    time.Duration
}

// egressTarget is a parsed, validated "host:port".
type egressTarget struct {
	host string     // lowercase DNS name, or the IP in canonical form
	ip   netip.Addr // valid iff host is an IP literal
	port uint16
}

func (t egressTarget) String() string {
	return net.JoinHostPort(t.host, strconv.Itoa(int(t.port)))
}

// newEgressProxy validates allow entries ("host:port"; host a DNS name or an
// IP literal, IPv6 in brackets; port 1-65535; no wildcards) and returns an
// error naming the bad entry. A nil logger discards.
func newEgressProxy(allow []string, logger *slog.Logger) (*egressProxy, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &egressProxy{
		allow:  make(map[string]struct{}, len(allow)),
		logger: logger,
		dial:   (&net.Dialer{}).DialContext,
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		maxConns:       egressMaxConns,
		headerTimeout:  egressHeaderTimeout,
		maxHeaderBytes: egressMaxHeaderBytes,
		dialTimeout:    egressDialTimeout,
		idleTimeout:    egressIdleTimeout,
	}
	for i, entry := range allow {
		t, err := egressParseAllowEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("sandbox.network.allow[%d]: %q: %w", i, entry, err)
		}
		p.allow[t.String()] = struct{}{}
	}
	return p, nil
}

func egressParseAllowEntry(s string) (egressTarget, error) {
	switch {
	case s == "":
		return egressTarget{}, errors.New("empty; want host:port")
	case strings.Contains(s, "://"):
		return egressTarget{}, errors.New("a URL; want host:port without a scheme")
	case strings.ContainsAny(s, "*?"):
		return egressTarget{}, errors.New("wildcards are not supported; list each host:port")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return egressTarget{}, errors.New("want host:port (IPv6 in brackets)")
	}
	return egressParseTarget(host, port, strings.HasPrefix(s, "["))
}

// egressParseTarget validates a host (brackets already removed; bracketed says
// whether it had them) and a decimal port.
func egressParseTarget(host, port string, bracketed bool) (egressTarget, error) {
	n, err := egressParsePort(port)
	if err != nil {
		return egressTarget{}, err
	}
	if host == "" {
		return egressTarget{}, errors.New("empty host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return egressTarget{}, errors.New("IPv6 zones are not supported")
		}
		if ip.Is4() && bracketed {
			return egressTarget{}, errors.New("brackets are for IPv6 addresses only")
		}
		ip = ip.Unmap()
		return egressTarget{host: ip.String(), ip: ip, port: n}, nil
	}
	if bracketed || strings.Contains(host, ":") {
		return egressTarget{}, errors.New("host is not a valid IPv6 address")
	}
	if !egressValidDNSName(host) {
		return egressTarget{}, errors.New("host is neither an IP address nor a DNS name")
	}
	return egressTarget{host: strings.ToLower(host), port: n}, nil
}

func egressParsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, errors.New("port must be a number 1-65535")
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return uint16(n), nil
}

// egressValidDNSName accepts letters, digits, '-' and '_' in dot-separated labels
// of 1-63 bytes, at most 253 bytes, no trailing dot, and a last label that is
// not all digits (so "127.1" or "1.2.3" never reach a resolver that would
// read them as IPv4).
func egressValidDNSName(s string) bool {
	if len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

var (
	egressThisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	egressCGNAT       = netip.MustParsePrefix("100.64.0.0/10")
	egressReserved4   = netip.MustParsePrefix("240.0.0.0/4") // includes 255.255.255.255
	egressV4Compat    = netip.MustParsePrefix("::/96")       // deprecated IPv4-compatible, also :: and ::1
	egressSiteLocal   = netip.MustParsePrefix("fec0::/10")
	egressNAT64       = netip.MustParsePrefix("64:ff9b::/96")
	egressNAT64Local  = netip.MustParsePrefix("64:ff9b:1::/48")
	egress6to4        = netip.MustParsePrefix("2002::/16")
)

// egressNonPublic returns why a resolved address must not be dialled, or ""
// if it is public.
func egressNonPublic(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate(), egressSiteLocal.Contains(a), egressNAT64Local.Contains(a):
		return "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case egressCGNAT.Contains(a):
		return "shared address space (CGNAT)"
	case egressThisNetwork.Contains(a), egressReserved4.Contains(a), egressV4Compat.Contains(a):
		return "reserved"
	case egressNAT64.Contains(a):
		b := a.As16()
		return egressNonPublic(netip.AddrFrom4([4]byte(b[12:16])))
	case egress6to4.Contains(a):
		b := a.As16()
		return egressNonPublic(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return ""
}

// serve accepts on ln until ctx is done, then closes ln and every open
// connection (client and upstream) and returns after all its goroutines have
// exited. It returns nil when ctx ended, or the Accept error if ln failed
// for good (closed under it); it retries transient Accept errors.
func (p *egressProxy) serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conns := &egressConns{m: make(map[net.Conn]struct{})}
	closerDone := make(chan struct{})
	go func() {
		defer close(closerDone)
		<-ctx.Done()
		_ = ln.Close()
		conns.closeAll()
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, p.maxConns)
	var (
		retErr      error
		delay       time.Duration
		lastTooMany time.Time
	)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, net.ErrClosed) {
				retErr = fmt.Errorf("egress proxy: accept: %w", err)
				break
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.logger.Warn("egress accept failed", "error", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		delay = 0
		select {
		case sem <- struct{}{}:
		default:
			// Recorded before the client can see the close: whoever
			// observes the refusal finds it counted.
			p.refuse("", egressRefusedTooManyConns)
			_ = c.Close()
			// A tool opening connections in a loop must not flood the log.
			if now := time.Now(); now.Sub(lastTooMany) >= time.Second {
				lastTooMany = now
				p.logger.Warn("egress refused", "reason", egressRefusedTooManyConns, "max_connections", p.maxConns)
			}
			continue
		}
		if !conns.add(c) {
			<-sem
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			defer conns.remove(c)
			p.handle(ctx, c, conns)
		})
	}
	cancel()
	<-closerDone
	wg.Wait()
	return retErr
}

// egressConns tracks open connections so that serve can close them all.
type egressConns struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
}

// add registers c, or closes it and reports false if closeAll already ran.
func (s *egressConns) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return false
	}
	s.m[c] = struct{}{}
	return true
}

func (s *egressConns) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
	_ = c.Close()
}

func (s *egressConns) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.m {
		_ = c.Close()
	}
	clear(s.m)
}

func (p *egressProxy) refuse(target, reason string) {
	if p.refused != nil {
		p.refused(target, reason)
	}
}

// egressReply is a reply of the proxy's own.
type egressReply struct {
	code   int
	body   string
	reason string // egressRefused* when this is a refusal, for the hook
	target string
}

func (p *egressProxy) reply(c net.Conn, r egressReply) {
	if r.reason != "" {
		p.refuse(r.target, r.reason)
	}
	_ = c.SetDeadline(time.Now().Add(egressReplyTimeout))
	body := "mcpgate egress proxy: " + r.body + "\n"
	_, err := fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		r.code, http.StatusText(r.code), len(body), body)
	if err != nil {
		return
	}
	// Half-close and drain a little of what the client still sends, so that
	// closing with unread data does not reset the connection before the
	// client has read the reply.
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_, _ = io.CopyN(io.Discard, c, 256<<10)
	}
}

func (p *egressProxy) badRequest(c net.Conn, target, detail string) {
	p.logger.Warn("egress refused", "target", target, "reason", egressRefusedBadRequest, "detail", detail)
	p.reply(c, egressReply{code: http.StatusBadRequest, body: detail, reason: egressRefusedBadRequest, target: target})
}

// handle serves one client connection: one request, then close.
func (p *egressProxy) handle(ctx context.Context, c net.Conn, conns *egressConns) {
	_ = c.SetDeadline(time.Now().Add(p.headerTimeout))
	// The cap has one read buffer of slack, as in net/http: bufio may read
	// ahead of the header's end.
	lr := &io.LimitedReader{R: c, N: p.maxHeaderBytes + 4096}
	br := bufio.NewReader(lr)
	req, err := http.ReadRequest(br)
	if err != nil {
		switch {
		case lr.N <= 0:
			p.logger.Warn("egress refused", "reason", egressRefusedHeaderTooLarge)
			p.reply(c, egressReply{code: http.StatusRequestHeaderFieldsTooLarge, body: "request header too large",
				reason: egressRefusedHeaderTooLarge})
		case errors.Is(err, io.EOF) && lr.N == p.maxHeaderBytes+4096:
			// Closed without sending anything.
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
			p.logger.Debug("egress connection closed before a full request")
		case egressIsTimeout(err):
			p.logger.Debug("egress request header timed out")
		default:
			// err may quote header content: never logged.
			p.badRequest(c, "", "malformed request")
		}
		return
	}
	lr.N = math.MaxInt64
	if req.ProtoMajor != 1 {
		p.badRequest(c, "", "only HTTP/1.x is supported")
		return
	}
	if req.Method == http.MethodConnect {
		p.connectTunnel(ctx, c, lr, br, req, conns)
		return
	}
	p.forward(ctx, c, lr, br, req, conns)
}

func egressIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkTarget reports the reply refusing t, or ok.
func (p *egressProxy) checkTarget(t egressTarget) (egressReply, bool) {
	if _, ok := p.allow[t.String()]; !ok {
		p.logger.Warn("egress refused", "target", t.String(), "reason", egressRefusedNotAllowed)
		return egressReply{code: http.StatusForbidden, body: "egress to " + t.String() + " is not allowed",
			reason: egressRefusedNotAllowed, target: t.String()}, false
	}
	return egressReply{}, true
}

// connect dials an allowed target. For a DNS name it resolves, refuses if any
// address is not public, and dials the checked addresses themselves. A
// non-nil refusal means a 403; a nil refusal with a nil conn means the
// connection failed (502, logged).
func (p *egressProxy) connect(ctx context.Context, t egressTarget) (net.Conn, *egressReply) {
	ctx, cancel := context.WithTimeout(ctx, p.dialTimeout)
	defer cancel()
	addrs := []netip.Addr{t.ip}
	if !t.ip.IsValid() {
		var err error
		addrs, err = p.lookup(ctx, t.host)
		if err == nil && len(addrs) == 0 {
			err = errors.New("no addresses")
		}
		if err != nil {
			p.logger.Warn("egress dial failed", "target", t.String(), "error", err)
			return nil, nil
		}
		for _, a := range addrs {
			if class := egressNonPublic(a); class != "" {
				p.logger.Warn("egress refused", "target", t.String(), "reason", egressRefusedPrivateAddress,
					"address", a.String(), "class", class)
				return nil, &egressReply{code: http.StatusForbidden,
					body:   "egress to " + t.String() + " is not allowed: it resolves to a non-public address",
					reason: egressRefusedPrivateAddress, target: t.String()}
			}
		}
	}
	var err error
	for _, a := range addrs {
		var up net.Conn
		up, err = p.dial(ctx, "tcp", netip.AddrPortFrom(a.Unmap(), t.port).String())
		if err == nil {
			return up, nil
		}
	}
	p.logger.Warn("egress dial failed", "target", t.String(), "error", err)
	return nil, nil
}

// open checks t against the allowlist and connects to it, answering c
// itself when it refuses or fails. On success the upstream connection is
// tracked in conns (the caller removes it) and both ends come wrapped to
// share one idle timer.
func (p *egressProxy) open(ctx context.Context, c net.Conn, conns *egressConns, t egressTarget, method string) (up net.Conn, client, upstream egressIdleConn, ok bool) {
	if r, ok := p.checkTarget(t); !ok {
		p.reply(c, r)
		return nil, client, upstream, false
	}
	up, refusal := p.connect(ctx, t)
	if refusal != nil {
		p.reply(c, *refusal)
		return nil, client, upstream, false
	}
	if up == nil {
		p.reply(c, egressReply{code: http.StatusBadGateway, body: "egress to " + t.String() + " failed: could not connect"})
		return nil, client, upstream, false
	}
	if !conns.add(up) {
		return nil, client, upstream, false
	}
	p.logger.Info("egress allowed", "target", t.String(), "method", method, "address", up.RemoteAddr().String())
	idle := &egressIdle{conns: [2]net.Conn{c, up}, timeout: p.idleTimeout}
	idle.touch()
	return up, egressIdleConn{Conn: c, idle: idle}, egressIdleConn{Conn: up, idle: idle}, true
}

func (p *egressProxy) connectTunnel(ctx context.Context, c net.Conn, lr *io.LimitedReader, br *bufio.Reader, req *http.Request, conns *egressConns) {
	host, port, err := net.SplitHostPort(req.RequestURI)
	if err != nil {
		p.badRequest(c, "", "CONNECT needs host:port")
		return
	}
	t, err := egressParseTarget(host, port, strings.HasPrefix(req.RequestURI, "["))
	if err != nil {
		p.badRequest(c, "", "bad CONNECT target: "+err.Error())
		return
	}
	up, client, upstream, ok := p.open(ctx, c, conns, t, http.MethodConnect)
	if !ok {
		return
	}
	defer conns.remove(up)
	lr.R = client // bytes the client sent after the CONNECT, buffered in br, come first
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { egressSplice(upstream, br, c, up) })
	egressSplice(client, upstream, up, c)
	wg.Wait()
}

// egressSplice copies src to dst. On EOF it half-closes dst so the peer sees
// the end; on any error, or if dst cannot half-close, it closes both.
func egressSplice(dst io.Writer, src io.Reader, srcConn, dstConn net.Conn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dstConn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			return
		}
	}
	_ = srcConn.Close()
	_ = dstConn.Close()
}

// egressIdle closes a connection pair after idle time without traffic in
// either direction: every read or write that moves bytes pushes both
// connections' deadlines forward, which also extends an I/O already pending
// on the other connection.
type egressIdle struct {
	conns   [2]net.Conn
	timeout time.Duration
}

func (e *egressIdle) touch() {
	d := time.Now().Add(e.timeout)
	for _, c := range e.conns {
		_ = c.SetDeadline(d)
	}
}

// egressIdleConn deliberately hides ReadFrom/WriteTo so every copy goes
// through Read and Write.
type egressIdleConn struct {
	net.Conn
	idle *egressIdle
}

func (c egressIdleConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.idle.touch()
	}
	return n, err
}

func (c egressIdleConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.idle.touch()
	}
	return n, err
}

// egressHopHeaders are removed from forwarded requests and responses, with
// every header the Connection header names.
var egressHopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func egressRemoveHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range egressHopHeaders {
		h.Del(name)
	}
}

// forward serves an absolute-URI plain-HTTP request.
func (p *egressProxy) forward(ctx context.Context, c net.Conn, lr *io.LimitedReader, br *bufio.Reader, req *http.Request, conns *egressConns) {
	u := req.URL
	switch {
	case u.Scheme == "":
		p.badRequest(c, "", "not a proxy request: use an absolute http:// URI, or CONNECT")
		return
	case u.Scheme == "https":
		p.badRequest(c, "", "https:// URI: use CONNECT for https")
		return
	case u.Scheme != "http":
		p.badRequest(c, "", "only http:// URIs are proxied")
		return
	case u.Host == "" || u.Opaque != "":
		p.badRequest(c, "", "URI has no host")
		return
	}
	port := u.Port()
	defaultPort := port == ""
	if defaultPort {
		port = "80"
	}
	t, err := egressParseTarget(u.Hostname(), port, strings.HasPrefix(u.Host, "["))
	if err != nil {
		p.badRequest(c, "", "bad URI host: "+err.Error())
		return
	}
	up, client, upstream, ok := p.open(ctx, c, conns, t, req.Method)
	if !ok {
		return
	}
	defer conns.remove(up)
	lr.R = client

	hostHeader := t.host
	if t.ip.Is6() {
		hostHeader = "[" + t.host + "]"
	}
	if !defaultPort {
		hostHeader = t.String()
	}
	outURL := *u
	outURL.Scheme, outURL.Host, outURL.User, outURL.Fragment, outURL.RawFragment = "", "", nil, "", ""
	out := &http.Request{
		Method:           req.Method,
		URL:              &outURL,
		Proto:            "HTTP/1.1",
		ProtoMajor:       1,
		ProtoMinor:       1,
		Header:           req.Header.Clone(),
		Body:             req.Body,
		ContentLength:    req.ContentLength,
		TransferEncoding: req.TransferEncoding,
		Trailer:          req.Trailer,
		Host:             hostHeader,
		Close:            true,
	}
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	egressRemoveHopHeaders(out.Header)
	// The proxy answers "Expect: 100-continue" itself and sends the body
	// right away.
	expectContinue := strings.EqualFold(out.Header.Get("Expect"), "100-continue")
	out.Header.Del("Expect")
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // keep Request.Write from adding Go's
	}
	if expectContinue {
		if _, err := io.WriteString(client, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			return
		}
	}

	// Write the request while reading the response: an upstream may answer
	// before it has read the whole body.
	if out.Body != nil {
		out.Body = &egressBody{ReadCloser: out.Body, up: up}
	}
	written := make(chan error, 1)
	go func() { written <- out.Write(upstream) }()
	defer func() {
		// Unblock the writer if the response ended before the request
		// body: it may wait on either connection.
		_ = up.Close()
		_ = c.SetReadDeadline(time.Now())
		<-written
	}()

	ulr := &io.LimitedReader{R: upstream, N: egressMaxRespHeader}
	ubr := bufio.NewReader(ulr)
	var resp *http.Response
	for i := 0; ; i++ {
		resp, err = http.ReadResponse(ubr, out)
		if err != nil || resp.StatusCode >= 200 || i == 16 {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			err = errors.New("upstream switched protocols")
			break
		}
		ulr.N = egressMaxRespHeader // skip interim (1xx) responses
	}
	if err == nil && resp.StatusCode < 200 {
		err = errors.New("too many interim responses")
	}
	if err != nil {
		p.logger.Warn("egress upstream failed", "target", t.String(), "error", err)
		p.reply(c, egressReply{code: http.StatusBadGateway, body: "egress to " + t.String() + " failed: bad upstream response"})
		return
	}
	ulr.N = math.MaxInt64
	defer resp.Body.Close()
	egressRemoveHopHeaders(resp.Header)
	resp.Close = true
	_ = resp.Write(client)
}

// egressBody is a forwarded request body. If the client fails to deliver it
// in full, the upstream connection is closed: the upstream would otherwise
// wait for the rest, and the response to a truncated request is void.
type egressBody struct {
	io.ReadCloser
	up net.Conn
}

func (b *egressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		_ = b.up.Close()
	}
	return n, err
}
