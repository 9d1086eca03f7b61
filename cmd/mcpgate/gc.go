package main

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The gateway's garbage collector target. Every call through the gateway is
// decoded and encoded twice (the SDK's server towards the client, its client
// towards the upstream), which makes short-lived garbage over a live heap
// that is small (about 3 MiB) when the gateway is busy with calls and large
// when it holds thousands of sessions. A fixed GOGC serves one case and not
// the other: at Go's default of 100 the collector took 10.7% of the CPU of a
// busy gateway's test process against 2.4% at 400 (BenchmarkUpstream,
// gc-cpu-%), and at 400 an idle session cost 28 KiB of RSS against 18 at 100
// (bench/run.sh --sessions 1000; docs/performance.md).
//
// So the target follows the live heap: the garbage allowed between two
// collections is gcHeadroom or the live heap, whichever is larger. A small
// heap gets up to gcPercentMax, a heap past gcHeadroom gets Go's default,
// and the heap's target is never more than twice the live heap (as of the
// last collection) plus gcHeadroom.
const (
	gcHeadroom   = 8 << 20
	gcPercentMin = 100
	gcPercentMax = 400
	gcTuneEvery  = time.Second
)

// gcPercentFor is the GOGC for a live heap of live bytes: headroom over live,
// in percent, clamped to [gcPercentMin, gcPercentMax].
func gcPercentFor(live uint64) int {
	if live == 0 {
		return gcPercentMax
	}
	return int(min(max(uint64(gcHeadroom)*100/live, gcPercentMin), gcPercentMax))
}

// startGCTuner sets the collector's target from the live heap after every
// collection (and once a second) until stop is called, unless the operator
// set GOGC, which is then left alone.
func startGCTuner() (stop func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tuneGC(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// tuneGC follows the live heap until ctx ends. The live heap is only known
// at the end of a collection, so the target is set again right after each
// one: with a tick alone, a burst (a thousand sessions opened in half a
// second) ran through several collections under a target set for the small
// heap before it, and left the process that much larger. The tick covers a
// runtime that skips a notice.
func tuneGC(ctx context.Context) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	debug.SetGCPercent(gcPercentMax)
	current := gcPercentMax
	collected := notifyCollections(ctx)
	t := time.NewTicker(gcTuneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-collected:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return // not reported by this runtime: keep what is set
		}
		// Changing the target is cheap but not free; a change under a
		// tenth is not worth making.
		if want := gcPercentFor(sample[0].Value.Uint64()); want*10 < current*9 || want*10 > current*11 {
			debug.SetGCPercent(want)
			current = want
		}
	}
}

// notifyCollections returns a channel that receives (without blocking the
// runtime: a notice is dropped while one is pending) after each garbage
// collection, until ctx ends. An object with a cleanup is made unreachable;
// the collection that finds it runs the cleanup, which makes the next one.
func notifyCollections(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	var arm func()
	arm = func() {
		sentinel := new([16]byte) // big enough not to share a tiny-alloc block
		runtime.AddCleanup(sentinel, func(struct{}) {
			if ctx.Err() != nil {
				return // tuning stopped: let the chain end
			}
			select {
			case ch <- struct{}{}:
			default:
			}
			arm()
		}, struct{}{})
	}
	arm()
	return ch
}
