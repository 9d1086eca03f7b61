package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		live uint64
		want int
	}{
		{0, gcPercentMax},
		{1 * mib, gcPercentMax},
		{2 * mib, gcPercentMax}, // 8 MiB of garbage over 2 MiB: 400%
		{3 * mib, 266},          // a busy gateway
		{4 * mib, 200},
		{5 * mib, 160},
		{8 * mib, gcPercentMin},
		{16 * mib, gcPercentMin},
		{1 << 30, gcPercentMin},
	}
	for _, tt := range tests {
		if got := gcPercentFor(tt.live); got != tt.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tt.live/mib, got, tt.want)
		}
		// The garbage allowed never exceeds the headroom or the live heap,
		// whichever is larger.
		if got := gcPercentFor(tt.live); tt.live > 0 && uint64(got)*tt.live/100 > max(uint64(gcHeadroom), tt.live) {
			t.Errorf("gcPercentFor(%d) = %d allows %d bytes of garbage", tt.live, got, uint64(got)*tt.live/100)
		}
	}
}

// TestTuneGCSetsPercent runs the tuner for real: it raises the target for
// this test's small heap, and puts back nothing when stopped (the gateway
// exits then).
func TestTuneGCSetsPercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); tuneGC(ctx) }()
	// The first setting is immediate.
	deadline := time.Now().Add(5 * time.Second)
	gogc := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	for {
		metrics.Read(gogc)
		if p := gogc[0].Value.Uint64(); p >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d, want the tuner to raise it for a small heap", gogc[0].Value.Uint64())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

// TestNotifyCollections: a notice follows every collection while ctx
// lasts.
func TestNotifyCollections(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	collected := notifyCollections(ctx)
	for i := range 3 {
		runtime.GC()
		select {
		case <-collected:
		case <-time.After(10 * time.Second):
			t.Fatalf("no notice after collection %d", i+1)
		}
	}
}
