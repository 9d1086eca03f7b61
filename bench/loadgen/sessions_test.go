package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestHoldSessions(t *testing.T) {
	ts := newTestServer(t, false)
	cfg := SessionsConfig{URL: ts.url + "/legacy", Key: testKey, Sessions: 25, Parallel: 4}
	sum, err := HoldSessions(t.Context(), cfg)
	if err != nil {
		t.Fatalf("HoldSessions: %v", err)
	}
	if sum.Sessions != cfg.Sessions || sum.TotalErrors() != 0 {
		t.Fatalf("held %d sessions with %d errors (%v), want %d and none", sum.Sessions, sum.TotalErrors(), sum.ErrorSamples, cfg.Sessions)
	}
	if got := ts.deletes.Load(); got != int64(cfg.Sessions) {
		t.Errorf("server saw %d DELETEs, want %d", got, cfg.Sessions)
	}
	if sum.Before != nil || sum.Held != nil {
		t.Errorf("measured without a pid: %+v", sum)
	}
}

// With a pid, the three readings are taken; the test server runs in this
// process, so the pid is the test's own.
func TestHoldSessionsMeasures(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	ts := newTestServer(t, false)
	cfg := SessionsConfig{URL: ts.url + "/legacy", Key: testKey, Sessions: 10, Parallel: 2,
		PID: os.Getpid(), Samples: 2, Interval: time.Millisecond}
	sum, err := HoldSessions(t.Context(), cfg)
	if err != nil {
		t.Fatalf("HoldSessions: %v", err)
	}
	if sum.Before == nil || sum.Held == nil || sum.Closed == nil || sum.Held.SelfKB <= 0 {
		t.Fatalf("readings missing: %+v", sum)
	}
	want := perSessionKB(sum.Before.SelfKB, sum.Held.SelfKB, sum.Sessions)
	if sum.PerSessionKB != want {
		t.Errorf("per session = %v, want %v from the readings", sum.PerSessionKB, want)
	}
	if !strings.Contains(sum.String(), "per_session=") {
		t.Errorf("String() = %q lacks the per-session figure", sum.String())
	}
}

// A failed open is counted, and the sessions that did open are still closed.
func TestHoldSessionsCountsFailures(t *testing.T) {
	ts := newTestServer(t, false)
	cfg := SessionsConfig{URL: ts.url + "/legacy", Key: "wrong", Sessions: 5, Parallel: 2}
	sum, err := HoldSessions(t.Context(), cfg)
	if err != nil {
		t.Fatalf("HoldSessions: %v", err)
	}
	if sum.OpenErrors != cfg.Sessions || sum.Sessions != 0 {
		t.Errorf("got %d open errors and %d sessions, want %d and 0", sum.OpenErrors, sum.Sessions, cfg.Sessions)
	}
	if len(sum.ErrorSamples) == 0 || !strings.Contains(sum.ErrorSamples[0], "401") {
		t.Errorf("error samples %q do not show the 401", sum.ErrorSamples)
	}
}

func TestSessionsConfigValidate(t *testing.T) {
	good := SessionsConfig{URL: "http://127.0.0.1:1/mcp", Sessions: 1, Parallel: 1}
	if err := good.validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for name, mutate := range map[string]func(*SessionsConfig){
		"no sessions": func(c *SessionsConfig) { c.Sessions = 0 },
		"no parallel": func(c *SessionsConfig) { c.Parallel = 0 },
		"bad url":     func(c *SessionsConfig) { c.URL = "not a url" },
		"bad pid":     func(c *SessionsConfig) { c.PID = -1 },
		"bad settle":  func(c *SessionsConfig) { c.Settle = -time.Second },
	} {
		c := good
		mutate(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: validate accepted %+v", name, c)
		}
	}
}

// A load run with a pid reads the server's RSS before and during the
// measured window, and its CPU time over the window. The test server runs
// in this process, so here the server, its upstream and the generator are
// one process, and each must have used some CPU.
func TestRunSamplesRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	ts := newTestServer(t, false)
	cfg := testConfig(ts.url, eraLegacy)
	cfg.Calls = 0
	cfg.Duration = 300 * time.Millisecond
	cfg.PID = os.Getpid()
	cfg.UpstreamPID = os.Getpid()
	cfg.SampleEvery = 20 * time.Millisecond
	sum, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sum.RSSStart == nil || sum.RSSPeak == nil || sum.RSSStart.SelfKB <= 0 {
		t.Fatalf("no RSS readings: %+v", sum)
	}
	if sum.RSSSamples < 2 || sum.RSSPeak.SelfKB <= 0 {
		t.Errorf("got %d readings, peak %d KiB; want several and a positive peak", sum.RSSSamples, sum.RSSPeak.SelfKB)
	}
	c := sum.CPUUse
	if c == nil {
		t.Fatalf("no CPU figures: %+v", sum)
	}
	if c.TicksPerSec <= 0 || c.SelfMs <= 0 || c.PerCallSelf <= 0 || c.PerCallLoadgen <= 0 || c.UpstreamMs <= 0 {
		t.Errorf("CPU figures = %+v, want positive ones", *c)
	}
	// No process uses more CPU in the window than the machine has (plus a
	// tick at either end).
	if limit := float64(runtime.NumCPU())*sum.ElapsedSec*1e3 + 20; c.SelfMs > limit {
		t.Errorf("self CPU %v ms in a %.0f ms window exceeds %v ms", c.SelfMs, sum.ElapsedSec*1e3, limit)
	}
	if !strings.Contains(sum.String(), "cpu_us_per_call=") {
		t.Errorf("String() = %q, want the CPU figures", sum.String())
	}
}

// A session the server ended while it was held answers its DELETE with 404;
// it is counted as lost, because the held reading did not include it.
func TestHoldSessionsCountsLost(t *testing.T) {
	// A server that forgets every session at once: DELETE finds none.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodDelete:
			http.Error(w, "session not found", http.StatusNotFound)
		case r.Header.Get("Mcp-Session-Id") == "":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Mcp-Session-Id", "s1")
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25"}}`))
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(srv.Close)
	sum, err := HoldSessions(t.Context(), SessionsConfig{URL: srv.URL, Sessions: 3, Parallel: 2})
	if err != nil {
		t.Fatalf("HoldSessions: %v", err)
	}
	if sum.Lost != 3 || sum.CloseErrors != 3 {
		t.Errorf("got %d lost of %d close errors, want 3 of 3", sum.Lost, sum.CloseErrors)
	}
	if !isStatus(fmt.Errorf("wrapped: %w", &httpStatusError{code: 404}), http.StatusNotFound) {
		t.Error("isStatus does not see a wrapped 404")
	}
}
