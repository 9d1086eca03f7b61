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
	cfg, asJSON := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
	if err := printSummary(sum, asJSON); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
	if n := sum.TotalErrors(); n > 0 {
		for _, m := range sum.ErrorSamples {
			fmt.Fprintf(os.Stderr, "loadgen: error: %s\n", m)
		}
		fmt.Fprintf(os.Stderr, "loadgen: %d failed calls\n", n)
		os.Exit(1)
	}
}

func parseFlags() (Config, bool) {
	var cfg Config
	var args string
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/mcp", "MCP endpoint URL")
	flag.StringVar(&cfg.Era, "era", eraModern, "protocol era: legacy (2025-11-25, sessions) or modern (2026-07-28, stateless)")
	flag.IntVar(&cfg.Concurrency, "c", 16, "concurrent workers (each with its own session in the legacy era)")
	flag.DurationVar(&cfg.Duration, "d", 10*time.Second, "measured duration")
	flag.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before the measured duration")
	flag.Int64Var(&cfg.Calls, "n", 0, "if > 0, stop after this many measured calls (or -d, whichever is first)")
	flag.StringVar(&cfg.Key, "key", "", "API key sent as 'Authorization: Bearer KEY'; empty sends none")
	flag.StringVar(&cfg.Tool, "tool", "echo", "tool to call")
	flag.StringVar(&args, "args", `{"message":"hello"}`, "tool arguments as a JSON object")
	flag.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per-request timeout")
	asJSON := flag.Bool("json", false, "print the summary as JSON")
	flag.Parse()
	cfg.Args = json.RawMessage(args)
	return cfg, *asJSON
}

func printSummary(sum Summary, asJSON bool) error {
	if !asJSON {
		_, err := fmt.Println(sum)
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(sum); err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	return nil
}
