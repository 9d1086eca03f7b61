package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/transport"
)

// Webhook is where firings are POSTed as JSON.
type Webhook struct {
	// URL is https, or http to a loopback host (checked again on the
	// address actually dialled).
	URL string
	// Timeout bounds one delivery.
	Timeout time.Duration
	// Header is added to every POST; its values are secrets and never logged.
	Header http.Header
	// QueueSize bounds the firings waiting for delivery.
	QueueSize int
	// RootCAs replaces the system roots (tests); nil means the system's.
	RootCAs *x509.CertPool
}

// Delivery results (Metrics.AlertDelivery).
const (
	DeliveryOK      = "ok"
	DeliveryFailed  = "failed"
	DeliveryDropped = "dropped" // the queue was full, or mcpgate was stopping
)

// maxResponseBytes is how much of a receiver's answer is read (and thrown
// away) so that the connection can be reused.
const maxResponseBytes = 64 << 10

// sender delivers firings one at a time from a bounded queue. It is the
// only goroutine of the package; close stops it.
type sender struct {
	url     string
	header  http.Header
	timeout time.Duration
	client  *http.Client
	logger  *slog.Logger
	metrics Metrics

	queue chan Firing
	stop  chan struct{}
	done  chan struct{}

	mu     sync.Mutex
	closed bool
}

func startSender(w Webhook, logger *slog.Logger, metrics Metrics) *sender {
	plain := false
	if u, err := url.Parse(w.URL); err == nil && u.Scheme == "http" {
		plain = true
	}
	dialer := transport.Dialer(w.Timeout, plain)
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: w.RootCAs}
	transport := &http.Transport{
		Proxy:                 nil, // the receiver is reached directly, as configured
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   w.Timeout,
		ResponseHeaderTimeout: w.Timeout,
		MaxIdleConns:          1,
		IdleConnTimeout:       time.Minute,
	}
	s := &sender{
		url:     w.URL,
		header:  w.Header,
		timeout: w.Timeout,
		client: &http.Client{
			Transport: transport,
			Timeout:   w.Timeout,
			// A redirect could take the alert (and its headers) elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		logger:  logger,
		metrics: metrics,
		queue:   make(chan Firing, max(w.QueueSize, 1)),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.run()
	return s
}

// enqueue hands f to the sender without ever blocking the caller (a request
// path): a full queue drops it.
func (s *sender) enqueue(f Firing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.metrics.AlertDelivery(DeliveryDropped)
		return
	}
	select {
	case s.queue <- f:
	default:
		s.metrics.AlertDelivery(DeliveryDropped)
		s.logger.Warn("alert webhook queue full: firing not delivered", "rule", f.Rule)
	}
}

func (s *sender) run() {
	defer close(s.done)
	for {
		// Stopping wins over a queued firing: close must not wait for
		// the whole queue.
		select {
		case <-s.stop:
			return
		default:
		}
		select {
		case <-s.stop:
			return
		case f := <-s.queue:
			s.deliver(f)
		}
	}
}

// deliver POSTs one firing. It is not retried: the firing is logged and
// counted whatever happens, and the next window brings a new one.
func (s *sender) deliver(f Firing) {
	body, err := json.Marshal(f)
	if err != nil { // cannot happen: Firing is plain data
		s.metrics.AlertDelivery(DeliveryFailed)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		s.failed(f, err)
		return
	}
	for k, vs := range s.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mcpgate/"+f.Version)
	resp, err := s.client.Do(req)
	if err != nil {
		s.failed(f, err)
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s.failed(f, fmt.Errorf("receiver answered %s", resp.Status))
		return
	}
	s.metrics.AlertDelivery(DeliveryOK)
}

func (s *sender) failed(f Firing, err error) {
	s.metrics.AlertDelivery(DeliveryFailed)
	// The error of a url.Error names the URL, never the headers.
	s.logger.Warn("alert webhook delivery failed", "rule", f.Rule, "error", err)
}

// close stops the sender after the delivery in flight (bounded by its
// timeout) and drops what is still queued.
func (s *sender) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	for {
		select {
		case <-s.queue:
			s.metrics.AlertDelivery(DeliveryDropped)
		default:
			s.client.CloseIdleConnections()
			return
		}
	}
}
