// Command mcpgate is a security gateway for MCP (Model Context Protocol)
// servers. See the README for what it does and how to run it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpgate/mcpgate/internal/sandbox"
)

func main() {
	// A sandbox's init is mcpgate re-executed; it must run before anything
	// else (no signal handling, no flags: it never returns).
	if sandbox.IsInit() {
		sandbox.RunInit()
	}
	if err := sandbox.KeepDescriptorsPrivate(); err != nil {
		fmt.Fprintln(os.Stderr, "mcpgate:", err)
		os.Exit(exitError)
	}
	ctx, stop := drainOnSignal()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// drainOnSignal returns a context cancelled by the first SIGINT or SIGTERM,
// which makes `serve` drain (finish calls in flight within the grace period,
// stop the children, flush the audit log). A second signal exits at once;
// the children die with the gateway (they are started with a parent-death
// signal).
func drainOnSignal() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-signals:
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-signals:
			fmt.Fprintf(os.Stderr, "mcpgate: second signal (%v): exiting now, without draining\n", s)
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(signals)
		close(done)
		cancel()
	}
}
