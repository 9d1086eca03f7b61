package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// maxSamples is how many distinct error messages are kept per worker and in
// the summary: enough to diagnose, bounded when every call fails.
const maxSamples = 5

// workerStats is owned by a single worker goroutine until the run ends.
type workerStats struct {
	latencies      []time.Duration // successful measured calls only
	errors         int64
	warmupCalls    int64
	warmupErrors   int64
	teardownErrors int64
	samples        []string
}

func (s *workerStats) record(measured bool, latency time.Duration, err error) {
	switch {
	case !measured && err == nil:
		s.warmupCalls++
	case !measured:
		s.warmupErrors++
		s.sample(err)
	case err == nil:
		s.latencies = append(s.latencies, latency)
	default:
		s.errors++
		s.sample(err)
	}
}

func (s *workerStats) addTeardownError(err error) {
	s.teardownErrors++
	s.sample(err)
}

func (s *workerStats) sample(err error) {
	s.samples = addSample(s.samples, err.Error())
}

// addSample keeps msg unless the list is full or holds a message of the same
// shape: messages that differ only in numbers (request ids echoed back in an
// error body) are the same failure.
func addSample(samples []string, msg string) []string {
	if len(samples) >= maxSamples {
		return samples
	}
	for _, s := range samples {
		if shape(s) == shape(msg) {
			return samples
		}
	}
	return append(samples, msg)
}

// shape replaces every run of digits in msg with "N".
func shape(msg string) string {
	var b strings.Builder
	inDigits := false
	for _, r := range msg {
		isDigit := r >= '0' && r <= '9'
		switch {
		case isDigit && !inDigits:
			b.WriteByte('N')
		case !isDigit:
			b.WriteRune(r)
		}
		inDigits = isDigit
	}
	return b.String()
}

// Summary is the result of one run; its JSON form is what bench/run.sh reads.
type Summary struct {
	URL            string   `json:"url"`
	Era            string   `json:"era"`
	Concurrency    int      `json:"concurrency"`
	Rate           float64  `json:"rate,omitempty"` // calls a second asked for (paced); 0: unpaced
	Calls          int64    `json:"calls"`          // successful measured calls
	Errors         int64    `json:"errors"`         // failed measured calls
	WarmupCalls    int64    `json:"warmup_calls"`
	WarmupErrors   int64    `json:"warmup_errors"`
	TeardownErrors int64    `json:"teardown_errors"`
	ElapsedSec     float64  `json:"elapsed_s"`
	CallsPerSec    float64  `json:"calls_per_s"`
	P50Ms          float64  `json:"p50_ms"`
	P90Ms          float64  `json:"p90_ms"`
	P99Ms          float64  `json:"p99_ms"`
	MaxMs          float64  `json:"max_ms"`
	ErrorSamples   []string `json:"error_samples,omitempty"`
	// With a pid to watch: the server's RSS as this run found it, and the
	// peak of the readings taken during the measured window (KiB).
	RSSStart   *rss `json:"rss_start,omitempty"`
	RSSPeak    *rss `json:"rss_peak,omitempty"`
	RSSSamples int  `json:"rss_samples,omitempty"`
	// With a pid to watch: the CPU time spent during the measured window
	// (cpu_* fields, flattened; see CPUUse).
	*CPUUse
}

// TotalErrors counts every failure in the run, whatever its phase.
func (s Summary) TotalErrors() int64 {
	return s.Errors + s.WarmupErrors + s.TeardownErrors
}

// String is the one-line human form.
func (s Summary) String() string {
	line := fmt.Sprintf("era=%s c=%d calls=%d errors=%d elapsed=%.2fs calls/s=%.1f p50=%.3fms p90=%.3fms p99=%.3fms max=%.3fms",
		s.Era, s.Concurrency, s.Calls, s.TotalErrors(), s.ElapsedSec, s.CallsPerSec, s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs)
	if s.RSSStart != nil && s.RSSPeak != nil {
		line += fmt.Sprintf(" rss_start=%dKiB rss_peak=%dKiB children_start=%dKiB children_peak=%dKiB",
			s.RSSStart.SelfKB, s.RSSPeak.SelfKB, s.RSSStart.ChildrenKB, s.RSSPeak.ChildrenKB)
	}
	if c := s.CPUUse; c != nil {
		line += fmt.Sprintf(" cpu_us_per_call=%.1f children_cpu_us_per_call=%.1f loadgen_cpu_us_per_call=%.1f",
			c.PerCallSelf, c.PerCallChild, c.PerCallLoadgen)
		if c.UpstreamMs > 0 {
			line += fmt.Sprintf(" upstream_cpu_us_per_call=%.1f", c.PerCallUp)
		}
	}
	return line
}

// summarize merges the per-worker histograms once all workers have stopped.
func summarize(cfg Config, workers []*worker, elapsed time.Duration) Summary {
	sum := Summary{URL: cfg.URL, Era: cfg.Era, Concurrency: cfg.Concurrency, Rate: cfg.Rate, ElapsedSec: elapsed.Seconds()}
	var all []time.Duration
	for _, w := range workers {
		st := &w.stats
		all = append(all, st.latencies...)
		sum.Errors += st.errors
		sum.WarmupCalls += st.warmupCalls
		sum.WarmupErrors += st.warmupErrors
		sum.TeardownErrors += st.teardownErrors
		for _, m := range st.samples {
			sum.ErrorSamples = addSample(sum.ErrorSamples, m)
		}
	}
	slices.Sort(all)
	sum.Calls = int64(len(all))
	if elapsed > 0 {
		sum.CallsPerSec = float64(sum.Calls) / elapsed.Seconds()
	}
	sum.P50Ms = ms(percentile(all, 50))
	sum.P90Ms = ms(percentile(all, 90))
	sum.P99Ms = ms(percentile(all, 99))
	sum.MaxMs = ms(percentile(all, 100))
	return sum
}

// percentile uses the nearest-rank method on a sorted slice: the smallest
// value with at least p% of the samples at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
