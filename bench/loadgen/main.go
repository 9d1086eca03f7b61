// Command loadgen drives tools/call load at an MCP Streamable HTTP endpoint
// over raw HTTP with keep-alive, in either protocol era, and reports calls/s
// and latency percentiles.
//
// Legacy (2025-11-25): each worker opens its own session (initialize,
// notifications/initialized), calls tools/call in a loop, then DELETEs it.
// Modern (2026-07-28): every call is a self-contained stateless POST.
//
// Example:
//
//	loadgen -url http://127.0.0.1:8080/mcp -era modern -c 16 -d 10s -key "$KEY"
//
// With -pid, the load run also reads that server's resident memory (VmRSS
// from /proc/PID/status, and separately the total of its descendants, where
// mcpgate's sandboxed stdio upstreams live): once before the run and every
// -sample-every during the measured window, keeping the peak. It also reads
// CPU time (utime + stime from /proc/PID/stat) as the measured window
// begins and as it ends: the server's own, its descendants' summed, and the
// generator's, each reported in ms and in µs per successful call
// (cpu_us_per_call_self, _children, _loadgen). -upstream-pid adds a server
// the calls pass through that is not the -pid's child (an HTTP upstream).
//
// -mode sessions measures memory per idle session instead: it opens
// -sessions legacy sessions (-c at a time), reads the server's settled RSS
// before and while they are held idle, then DELETEs them all:
//
//	loadgen -mode sessions -sessions 1000 -pid "$PID" -url ... -key "$KEY"
//
// -mode rss only prints one settled reading of -pid.
//
// The exit status is 1 if the run could not take place or any call failed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	f := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch f.mode {
	case "load":
		err = runLoad(ctx, f)
	case "sessions":
		err = runSessions(ctx, f)
	case "rss":
		err = runRSS(ctx, f)
	default:
		err = fmt.Errorf("invalid mode %q: want load, sessions or rss", f.mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

// flags is the parsed command line: one Config for every mode, plus what
// only the sessions and rss modes read.
type flags struct {
	mode     string
	cfg      Config
	asJSON   bool
	sessions int
	settle   time.Duration
	samples  int
	interval time.Duration
	hold     time.Duration
}

func parseFlags() flags {
	var f flags
	var args string
	cfg := &f.cfg
	flag.StringVar(&f.mode, "mode", "load", "load (tools/call load), sessions (memory per idle session) or rss (one reading of -pid)")
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/mcp", "MCP endpoint URL")
	flag.StringVar(&cfg.Era, "era", eraModern, "protocol era: legacy (2025-11-25, sessions) or modern (2026-07-28, stateless)")
	flag.IntVar(&cfg.Concurrency, "c", 16, "concurrent workers (each with its own session in the legacy era); in sessions mode, sessions opened at once")
	flag.DurationVar(&cfg.Duration, "d", 10*time.Second, "measured duration")
	flag.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before the measured duration")
	flag.Int64Var(&cfg.Calls, "n", 0, "if > 0, stop after this many measured calls (or -d, whichever is first)")
	flag.StringVar(&cfg.Key, "key", "", "API key sent as 'Authorization: Bearer KEY'; empty sends none")
	flag.StringVar(&cfg.Tool, "tool", "echo", "tool to call")
	flag.StringVar(&args, "args", `{"message":"hello"}`, "tool arguments as a JSON object")
	flag.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per-request timeout")
	flag.IntVar(&cfg.PID, "pid", 0, "server process whose RSS and CPU time (and its descendants') to read; 0: none")
	flag.Float64Var(&cfg.Rate, "rate", 0, "if > 0, pace all workers together to this many calls a second (open loop; latency counts from when each call was due); 0: each worker calls as fast as it is answered")
	flag.IntVar(&cfg.UpstreamPID, "upstream-pid", 0, "with -pid: another server the calls pass through (not its descendant) whose CPU time to read too; 0: none")
	flag.DurationVar(&cfg.SampleEvery, "sample-every", 200*time.Millisecond, "RSS reading interval during a load run's measured window")
	flag.IntVar(&f.sessions, "sessions", 1000, "sessions mode: legacy sessions to open and hold")
	flag.DurationVar(&f.settle, "settle", 2*time.Second, "sessions and rss modes: wait before a settled RSS reading")
	flag.IntVar(&f.samples, "samples", 5, "sessions and rss modes: readings per settled RSS reading (the smallest is kept)")
	flag.DurationVar(&f.interval, "sample-interval", 200*time.Millisecond, "sessions and rss modes: time between those readings")
	flag.DurationVar(&f.hold, "hold", 0, "sessions mode: keep the sessions open this much longer after measuring")
	flag.BoolVar(&f.asJSON, "json", false, "print the summary as JSON")
	flag.Parse()
	cfg.Args = json.RawMessage(args)
	return f
}

func runLoad(ctx context.Context, f flags) error {
	sum, err := Run(ctx, f.cfg)
	if err != nil {
		return err
	}
	if err := printSummary(sum, f.asJSON); err != nil {
		return err
	}
	if n := sum.TotalErrors(); n > 0 {
		for _, m := range sum.ErrorSamples {
			fmt.Fprintf(os.Stderr, "loadgen: error: %s\n", m)
		}
		return fmt.Errorf("%d failed calls", n)
	}
	return nil
}

func runSessions(ctx context.Context, f flags) error {
	sum, err := HoldSessions(ctx, SessionsConfig{
		URL:      f.cfg.URL,
		Key:      f.cfg.Key,
		Sessions: f.sessions,
		Parallel: f.cfg.Concurrency,
		PID:      f.cfg.PID,
		Settle:   f.settle,
		Samples:  f.samples,
		Interval: f.interval,
		Hold:     f.hold,
		Timeout:  f.cfg.Timeout,
	})
	// A summary is printed even on error: it says how far the run got.
	if perr := printSummary(sum, f.asJSON); perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	if n := sum.TotalErrors(); n > 0 {
		for _, m := range sum.ErrorSamples {
			fmt.Fprintf(os.Stderr, "loadgen: error: %s\n", m)
		}
		if sum.Lost > 0 {
			return fmt.Errorf("%d sessions failed to open or close; %d of them were gone before their DELETE (ended by the server), so the held reading is not of %d sessions", n, sum.Lost, sum.Sessions)
		}
		return fmt.Errorf("%d sessions failed to open or close", n)
	}
	return nil
}

func runRSS(ctx context.Context, f flags) error {
	r, err := MeasureRSS(ctx, RSSConfig{PID: f.cfg.PID, Settle: f.settle, Samples: f.samples, Interval: f.interval})
	if err != nil {
		return err
	}
	return printSummary(r, f.asJSON)
}

func printSummary(sum any, asJSON bool) error {
	if !asJSON {
		if _, err := fmt.Println(sum); err != nil {
			return fmt.Errorf("print summary: %w", err)
		}
		return nil
	}
	if err := json.NewEncoder(os.Stdout).Encode(sum); err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	return nil
}
