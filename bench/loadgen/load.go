package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one load run.
type Config struct {
	URL         string
	Era         string // eraLegacy or eraModern
	Concurrency int
	// Duration is how long calls are measured after Warmup. If Calls is also
	// set, the run ends at whichever limit comes first.
	Duration time.Duration
	Warmup   time.Duration
	// Calls, if positive, ends the run after this many measured calls in
	// total (successes plus errors). Tests use it to be independent of speed.
	Calls   int64
	Key     string
	Tool    string
	Args    json.RawMessage
	Timeout time.Duration // per HTTP request; zero means defaultTimeout
	// PID, if positive, is the server process whose RSS (and its
	// descendants') is read before the run and every SampleEvery during the
	// measured window, and whose CPU time (and its descendants', and the
	// generator's own) is read as the window begins and as it ends;
	// ProcRoot is where /proc is (empty: /proc).
	PID         int
	ProcRoot    string
	SampleEvery time.Duration
	// UpstreamPID, if positive (and PID is), is another server the calls
	// pass through, not a descendant of PID (mcpgate's url: upstream): its
	// CPU time and its descendants' are read with PID's and reported apart.
	UpstreamPID int
	// Rate, if positive, paces the calls of all workers together to this
	// many a second, from the start of the warm-up: call i is due at
	// start + i/Rate, and its latency is counted from when it was due, not
	// from when a worker got to send it (so a stalled server is not hidden
	// by the workers waiting on it: no coordinated omission). Zero: each
	// worker calls again as soon as its last call returned (closed loop).
	Rate float64
}

const defaultTimeout = 30 * time.Second

func (c Config) validate() error {
	if _, err := url.ParseRequestURI(c.URL); err != nil {
		return fmt.Errorf("parse url: %w", err)
	}
	switch {
	case c.Era != eraLegacy && c.Era != eraModern:
		return fmt.Errorf("invalid era %q: want %s or %s", c.Era, eraLegacy, eraModern)
	case c.Concurrency < 1:
		return fmt.Errorf("invalid concurrency %d: want >= 1", c.Concurrency)
	case c.Duration <= 0 && c.Calls <= 0:
		return errors.New("invalid limits: need a positive duration or call count")
	case c.Warmup < 0:
		return fmt.Errorf("invalid warmup %v: want >= 0", c.Warmup)
	case c.Tool == "":
		return errors.New("invalid tool: empty name")
	case !json.Valid(c.Args):
		return fmt.Errorf("invalid args: not JSON: %s", c.Args)
	case c.PID < 0:
		return fmt.Errorf("invalid pid %d", c.PID)
	case c.UpstreamPID < 0 || (c.UpstreamPID > 0 && c.PID == 0):
		return fmt.Errorf("invalid upstream pid %d: want >= 0, and a pid with it", c.UpstreamPID)
	case c.PID > 0 && c.SampleEvery <= 0:
		return fmt.Errorf("invalid sample interval %v: want > 0 with a pid", c.SampleEvery)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || (c.Rate > 0 && time.Duration(float64(time.Second)/c.Rate) <= 0):
		return fmt.Errorf("invalid rate %v: want 0 (unpaced) or a positive number of calls a second, at most 1e9", c.Rate)
	}
	return nil
}

// plan is the shared schedule every worker follows, plus the optional
// shared call budget and pacing.
type plan struct {
	start       time.Time
	measureFrom time.Time
	deadline    time.Time // zero: no time limit
	budget      *atomic.Int64
	interval    time.Duration // between calls due, all workers together; zero: unpaced
	issued      atomic.Int64  // calls handed a due time so far (paced)
}

// due is when a worker's next call is due: now unpaced, else the next
// slot of the schedule (which may be in the past if the workers fall
// behind).
func (p *plan) due(now time.Time) time.Time {
	if p.interval <= 0 {
		return now
	}
	return p.start.Add(time.Duration(p.issued.Add(1)-1) * p.interval)
}

// next reports whether a worker may start a call due at now, and whether
// that call is measured (as opposed to warm-up).
func (p *plan) next(now time.Time) (ok, measured bool) {
	if !p.deadline.IsZero() && !now.Before(p.deadline) {
		return false, false
	}
	measured = !now.Before(p.measureFrom)
	if measured && p.budget != nil && p.budget.Add(-1) < 0 {
		return false, false
	}
	return true, measured
}

// Run opens one session per worker, drives tools/call until the plan ends,
// closes the sessions and summarises. It returns an error only when the run
// could not take place (bad config, a session failed to open); failed calls
// are counted in the Summary instead.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.validate(); err != nil {
		return Summary{}, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	// The starting reading comes before any session of this run exists:
	// the server as the previous runs left it.
	var start rss
	if cfg.PID > 0 {
		var err error
		if start, err = readRSS(cfg.ProcRoot, cfg.PID); err != nil {
			return Summary{}, fmt.Errorf("measure server: %w", err)
		}
	}
	transport := newTransport(cfg.Concurrency)
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: cfg.Timeout}

	workers, err := openWorkers(ctx, client, cfg)
	if err != nil {
		return Summary{}, err
	}
	p := newPlan(time.Now(), cfg)
	var sampler *peakSampler
	var cpuAtStart <-chan cpuResult
	stopCPU := make(chan struct{})
	if cfg.PID > 0 {
		sampler = startPeakSampler(cfg.ProcRoot, cfg.PID, cfg.SampleEvery, p.measureFrom)
		cpuAtStart = readCPUWindowAt(cfg.ProcRoot, cfg.cpuPIDs(), p.measureFrom, stopCPU)
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.loop(ctx, p) })
	}
	wg.Wait()
	elapsed := time.Since(p.measureFrom)
	// The CPU window ends with the elapsed time, before the sessions close:
	// it spans what calls/s does.
	var cpuStart, cpuEnd cpuResult
	if cpuAtStart != nil {
		cpuEnd.w, cpuEnd.err = readCPUWindow(cfg.ProcRoot, cfg.cpuPIDs())
		close(stopCPU)
		cpuStart = <-cpuAtStart
	}
	var peak rss
	var samples int
	if sampler != nil {
		if peak, samples, err = sampler.finish(); err != nil {
			closeWorkers(workers, cfg.Timeout)
			return Summary{}, fmt.Errorf("measure server under load: %w", err)
		}
	}
	closeWorkers(workers, cfg.Timeout)
	sum := summarize(cfg, workers, elapsed)
	if cfg.PID > 0 {
		sum.RSSStart, sum.RSSPeak, sum.RSSSamples = &start, &peak, samples
		if err := cmp.Or(cpuStart.err, cpuEnd.err); err != nil {
			return Summary{}, fmt.Errorf("measure server cpu: %w", err)
		}
		hz := clockTicks(filepath.Join(cfg.ProcRoot, "self", "auxv"))
		if sum.CPUUse, err = cpuUse(cpuStart.w, cpuEnd.w, hz, sum.Calls); err != nil {
			return Summary{}, err
		}
	}
	return sum, nil
}

// cpuPIDs are the processes whose CPU time a run reads: the server, then
// the upstream if there is one.
func (c Config) cpuPIDs() []int {
	if c.UpstreamPID > 0 {
		return []int{c.PID, c.UpstreamPID}
	}
	return []int{c.PID}
}

func newPlan(start time.Time, cfg Config) *plan {
	p := &plan{start: start, measureFrom: start.Add(cfg.Warmup)}
	if cfg.Rate > 0 {
		p.interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	if cfg.Duration > 0 {
		p.deadline = p.measureFrom.Add(cfg.Duration)
	}
	if cfg.Calls > 0 {
		p.budget = new(atomic.Int64)
		p.budget.Store(cfg.Calls)
	}
	return p
}

// newTransport keeps one idle connection per worker so that every call after
// the first reuses a kept-alive connection instead of measuring TCP setup.
func newTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // loopback benchmarks must never detour via $HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency + 8,
		MaxIdleConnsPerHost: concurrency + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// openWorkers opens every session concurrently before the clock starts, so
// that handshakes are not part of the measured window. If any fails, the
// ones that opened are closed again.
func openWorkers(ctx context.Context, client *http.Client, cfg Config) ([]*worker, error) {
	params, err := toolCallParams(cfg.Era, cfg.Tool, cfg.Args)
	if err != nil {
		return nil, err
	}
	workers := make([]*worker, cfg.Concurrency)
	errs := make([]error, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		s := newSession(client, cfg, params)
		workers[i] = &worker{session: s}
		wg.Go(func() { errs[i] = s.open(ctx) })
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		closeWorkers(workers, cfg.Timeout)
		return nil, fmt.Errorf("open sessions: %w", err)
	}
	return workers, nil
}

// firstError reports the first failure and how many there were; with 64
// workers the failures are nearly always the same one 64 times.
func firstError(errs []error) error {
	var first error
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
			first = cmp.Or(first, err)
		}
	}
	if n > 1 {
		return fmt.Errorf("%w (and %d more)", first, n-1)
	}
	return first
}

// closeWorkers ends every session. It uses its own context because the run
// context may already be cancelled, and servers should still see the DELETE.
func closeWorkers(workers []*worker, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			if err := w.session.close(ctx); err != nil {
				w.stats.addTeardownError(err)
			}
		})
	}
	wg.Wait()
}

// worker runs calls one after another on its own session and keeps its own
// statistics, so the hot loop shares nothing but the plan.
type worker struct {
	session *session
	stats   workerStats
}

func (w *worker) loop(ctx context.Context, p *plan) {
	var wait *time.Timer
	for ctx.Err() == nil {
		due := p.due(time.Now())
		ok, measured := p.next(due)
		if !ok {
			return
		}
		if d := time.Until(due); d > 0 {
			if wait == nil {
				wait = time.NewTimer(d)
			} else {
				wait.Reset(d)
			}
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-wait.C:
			}
		}
		err := w.session.callTool(ctx)
		latency := time.Since(due)
		if ctx.Err() != nil {
			return // interrupted: the failure is ours, not the server's
		}
		w.stats.record(measured, latency, err)
	}
}
