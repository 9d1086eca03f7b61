package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// SessionsConfig describes one idle-session memory measurement: open
// Sessions legacy-era (2025-11-25) sessions, hold them without traffic,
// and read the server's RSS before and while they are held.
type SessionsConfig struct {
	URL      string
	Key      string
	Sessions int
	// Parallel is how many sessions are being opened (or closed) at once.
	Parallel int
	// PID is the server process to measure; 0 opens, holds and closes the
	// sessions without measuring (tests, or a manual look with other tools).
	PID int
	// ProcRoot is where /proc is; empty means /proc.
	ProcRoot string
	// Settle is the wait before each settled reading; Samples readings
	// Interval apart are taken and the smallest kept (see settledRSS).
	Settle   time.Duration
	Samples  int
	Interval time.Duration
	// Hold keeps the sessions open this much longer after the reading, for
	// a look with other tools.
	Hold    time.Duration
	Timeout time.Duration // per HTTP request; zero means defaultTimeout
}

func (c SessionsConfig) validate() error {
	if _, err := url.ParseRequestURI(c.URL); err != nil {
		return fmt.Errorf("parse url: %w", err)
	}
	switch {
	case c.Sessions < 1:
		return fmt.Errorf("invalid sessions %d: want >= 1", c.Sessions)
	case c.Parallel < 1:
		return fmt.Errorf("invalid parallelism %d: want >= 1", c.Parallel)
	case c.PID < 0:
		return fmt.Errorf("invalid pid %d", c.PID)
	case c.Settle < 0 || c.Interval < 0 || c.Hold < 0:
		return errors.New("invalid durations: settle, interval and hold must be >= 0")
	}
	return nil
}

// SessionsSummary is the result of one idle-session measurement; its JSON
// form is what bench/run.sh reads. Memory figures are KiB.
type SessionsSummary struct {
	URL         string `json:"url"`
	Sessions    int    `json:"sessions"` // opened and held
	OpenErrors  int    `json:"open_errors"`
	CloseErrors int    `json:"close_errors"`
	// Lost counts the close errors that were 404s: sessions the server had
	// already ended (a session cap, an idle timeout) while they were meant
	// to be held, so the held reading did not hold them all.
	Lost    int     `json:"lost"`
	OpenSec float64 `json:"open_s"`
	// Before is read with no session and no client connection open; Held
	// with every session open and the client's connections closed, so that
	// only the sessions themselves remain; Closed after every DELETE.
	Before *rss `json:"before,omitempty"`
	Held   *rss `json:"held,omitempty"`
	Closed *rss `json:"closed,omitempty"`
	// PerSessionKB is (Held - Before) / Sessions for the process itself,
	// ChildrenPerSessionKB the same for its descendants.
	PerSessionKB         float64  `json:"per_session_kb"`
	ChildrenPerSessionKB float64  `json:"children_per_session_kb"`
	ErrorSamples         []string `json:"error_samples,omitempty"`
}

// TotalErrors counts failed opens and closes.
func (s SessionsSummary) TotalErrors() int { return s.OpenErrors + s.CloseErrors }

// String is the one-line human form.
func (s SessionsSummary) String() string {
	line := fmt.Sprintf("sessions=%d open_errors=%d close_errors=%d lost=%d open=%.2fs", s.Sessions, s.OpenErrors, s.CloseErrors, s.Lost, s.OpenSec)
	if s.Before != nil && s.Held != nil {
		line += fmt.Sprintf(" rss_before=%dKiB rss_held=%dKiB per_session=%.2fKiB children_before=%dKiB children_held=%dKiB children_per_session=%.2fKiB",
			s.Before.SelfKB, s.Held.SelfKB, s.PerSessionKB, s.Before.ChildrenKB, s.Held.ChildrenKB, s.ChildrenPerSessionKB)
	}
	if s.Closed != nil {
		line += fmt.Sprintf(" rss_closed=%dKiB", s.Closed.SelfKB)
	}
	return line
}

// HoldSessions opens cfg.Sessions legacy sessions, reads the server's RSS
// with them held idle, then DELETEs every one. Like Run, it returns an error
// only when the measurement could not take place; failed opens and closes
// are counted in the summary.
func HoldSessions(ctx context.Context, cfg SessionsConfig) (SessionsSummary, error) {
	if err := cfg.validate(); err != nil {
		return SessionsSummary{}, err
	}
	cfg.Timeout = cmpDuration(cfg.Timeout, defaultTimeout)
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	sum := SessionsSummary{URL: cfg.URL}
	measure := func() (*rss, error) {
		r, err := settledRSS(ctx, cfg.ProcRoot, cfg.PID, cfg.Settle, cfg.Samples, cfg.Interval)
		return &r, err
	}
	var err error
	if cfg.PID > 0 {
		if sum.Before, err = measure(); err != nil {
			return sum, fmt.Errorf("measure before: %w", err)
		}
	}

	transport := newTransport(cfg.Parallel)
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: cfg.Timeout}
	lcfg := Config{URL: cfg.URL, Era: eraLegacy, Key: cfg.Key}
	sessions := make([]*session, cfg.Sessions)
	for i := range sessions {
		sessions[i] = newSession(client, lcfg, nil)
	}
	start := time.Now()
	openErrs := forEach(cfg.Parallel, sessions, func(s *session) error { return s.open(ctx) })
	sum.OpenSec = time.Since(start).Seconds()
	// Only the sessions should remain on the server while it is measured,
	// not the kept-alive connections (and their buffers) that opened them.
	transport.CloseIdleConnections()
	sum.OpenErrors = len(openErrs)
	sum.Sessions = cfg.Sessions - sum.OpenErrors
	for _, e := range openErrs {
		sum.ErrorSamples = addSample(sum.ErrorSamples, e.Error())
	}

	var measureErr error
	if cfg.PID > 0 && sum.OpenErrors == 0 {
		if sum.Held, measureErr = measure(); measureErr == nil {
			sum.PerSessionKB = perSessionKB(sum.Before.SelfKB, sum.Held.SelfKB, sum.Sessions)
			sum.ChildrenPerSessionKB = perSessionKB(sum.Before.ChildrenKB, sum.Held.ChildrenKB, sum.Sessions)
		}
	}
	if measureErr == nil {
		measureErr = sleep(ctx, cfg.Hold)
	}

	// Close even when interrupted: the server should not be left holding
	// sessions until their idle timeout.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout)
	defer cancel()
	closeErrs := forEach(cfg.Parallel, sessions, func(s *session) error { return s.close(closeCtx) })
	transport.CloseIdleConnections()
	sum.CloseErrors = len(closeErrs)
	for _, e := range closeErrs {
		if isStatus(e, http.StatusNotFound) {
			sum.Lost++
		}
		sum.ErrorSamples = addSample(sum.ErrorSamples, e.Error())
	}
	if measureErr != nil {
		return sum, fmt.Errorf("measure held sessions: %w", measureErr)
	}
	if cfg.PID > 0 && sum.OpenErrors == 0 {
		if sum.Closed, err = measure(); err != nil {
			return sum, fmt.Errorf("measure after close: %w", err)
		}
	}
	return sum, nil
}

// forEach runs fn on every session with at most parallel in flight and
// returns the errors, in no particular order.
func forEach(parallel int, sessions []*session, fn func(*session) error) []error {
	var (
		next atomic.Int64
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range min(parallel, len(sessions)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(sessions) {
					return
				}
				if err := fn(sessions[i]); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errs
}

func cmpDuration(d, fallback time.Duration) time.Duration {
	if d <= 0 {
		return fallback
	}
	return d
}

// RSSConfig is a single settled reading of a server's memory.
type RSSConfig struct {
	PID      int
	ProcRoot string
	Settle   time.Duration
	Samples  int
	Interval time.Duration
}

// MeasureRSS takes one settled reading (see settledRSS).
func MeasureRSS(ctx context.Context, cfg RSSConfig) (rss, error) {
	if cfg.PID < 1 {
		return rss{}, fmt.Errorf("invalid pid %d: want >= 1", cfg.PID)
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	return settledRSS(ctx, cfg.ProcRoot, cfg.PID, cfg.Settle, cfg.Samples, cfg.Interval)
}
