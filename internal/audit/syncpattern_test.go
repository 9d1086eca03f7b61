package audit

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// batchCounter counts the Log's writes and syncs, and classifies each
// write by what it carries: a batch that holds a request record has a
// waiter (Append); one that holds only result records (Submit) has none.
type batchCounter struct {
	File
	writes, syncs     atomic.Int64
	waiterless        atomic.Int64 // writes with result records and no request record
	syncsAfterNoWait  atomic.Int64 // syncs whose preceding write was waiter-less
	lastWasWaiterless atomic.Bool
}

var (
	stageRequestJSON = []byte(`"stage":"request"`)
	stageResultJSON  = []byte(`"stage":"result"`)
)

func (c *batchCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	nw := !bytes.Contains(p, stageRequestJSON) && bytes.Contains(p, stageResultJSON)
	if nw {
		c.waiterless.Add(1)
	}
	c.lastWasWaiterless.Store(nw)
	return c.File.Write(p)
}

func (c *batchCounter) Sync() error {
	c.syncs.Add(1)
	if c.lastWasWaiterless.Load() {
		c.syncsAfterNoWait.Add(1)
	}
	return c.File.Sync()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCallPattern mimics the gateway's use of the log: 16 callers,
// each per call Appending a write-ahead request record (waiting for its
// fsync), then (after the call's own work, "gap") Submitting its result
// record without waiting, then (think: the client's turn) the next call. One op is one call. It reports fsyncs per call,
// the share of writes (batches) that had no waiter, and the process's CPU
// time per call (getrusage: user+system, every goroutine). sync=every-batch
// is the behaviour before SubmitSyncDelay (SubmitSyncDelay < 0: every group
// commit fsynced); sync=deferred, the default.
func BenchmarkCallPattern(b *testing.B) {
	for _, c := range []struct{ work, think time.Duration }{
		{0, 0}, {200 * time.Microsecond, 0}, {200 * time.Microsecond, 200 * time.Microsecond}, {time.Millisecond, time.Millisecond},
	} {
		for _, d := range []struct {
			name  string
			delay time.Duration
		}{{"every-batch", -1}, {"deferred", 0}} {
			b.Run("work="+c.work.String()+"/think="+c.think.String()+"/sync="+d.name, func(b *testing.B) {
				benchCallPattern(b, c.work, c.think, Options{SubmitSyncDelay: d.delay})
			})
		}
	}
}

func benchCallPattern(b *testing.B, work, think time.Duration, opts Options) {
	s, _, _ := newKeys(b)
	c := &batchCounter{}
	opts.Logger = quiet
	opts.WrapFile = func(f File) File { c.File = f; return c }
	l, err := Open(filepath.Join(b.TempDir(), "audit.jsonl"), s, opts)
	if err != nil {
		b.Fatal(err)
	}
	const G = 16
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	for range G {
		wg.Go(func() {
			req := event(0)
			req.Stage, req.Outcome = StageRequest, ""
			res := event(0)
			res.Stage, res.Outcome = StageResult, "ok"
			for next.Add(1) <= int64(b.N) {
				if err := l.Append(context.Background(), req); err != nil {
					b.Error(err)
					return
				}
				if work > 0 {
					time.Sleep(work)
				}
				if err := l.Submit(res); err != nil {
					b.Error(err)
					return
				}
				if think > 0 {
					time.Sleep(think)
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(c.syncs.Load())/n, "fsyncs/call")
	b.ReportMetric(float64(c.writes.Load())/n, "writes/call")
	if w := c.writes.Load(); w > 0 {
		b.ReportMetric(100*float64(c.waiterless.Load())/float64(w), "%writes-waiterless")
	}
	if sy := c.syncs.Load(); sy > 0 {
		b.ReportMetric(100*float64(c.syncsAfterNoWait.Load())/float64(sy), "%syncs-waiterless")
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/call")
	b.ReportMetric(n/wall.Seconds(), "calls/s")
}
