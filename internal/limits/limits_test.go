package limits

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestBuckets(t *testing.T) {
	type step struct {
		advance time.Duration
		key     string
		ok      bool
		retry   time.Duration // checked when !ok
	}
	tests := []struct {
		name        string
		rate        float64
		burst, keys int
		steps       []step
	}{
		{"burst then refused", 1, 3, 10, []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0},
			{0, "a", false, time.Second},
		}},
		{"retryAfter counts the partial refill", 2, 1, 10, []step{
			{0, "a", true, 0},
			{100 * time.Millisecond, "a", false, 400 * time.Millisecond},
			{399 * time.Millisecond, "a", false, time.Millisecond},
			{time.Millisecond, "a", true, 0},
		}},
		{"refill is capped at burst", 10, 2, 10, []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", false, 100 * time.Millisecond},
			{time.Hour, "a", true, 0}, {0, "a", true, 0}, {0, "a", false, 100 * time.Millisecond},
		}},
		{"a refused request takes nothing", 1, 1, 10, []step{
			{0, "a", true, 0}, {0, "a", false, time.Second}, {0, "a", false, time.Second},
			{500 * time.Millisecond, "a", false, 500 * time.Millisecond},
			{500 * time.Millisecond, "a", true, 0},
		}},
		{"keys are isolated", 1, 1, 10, []step{
			{0, "a", true, 0}, {0, "a", false, time.Second},
			{0, "b", true, 0}, {0, "b", false, time.Second},
			{0, "c", true, 0},
		}},
		{"fractional rate", 0.5, 1, 10, []step{
			{0, "a", true, 0}, {time.Second, "a", false, time.Second}, {time.Second, "a", true, 0},
		}},
		{"eviction at the cap forgets the least recently used key", 1, 1, 2, []step{
			{0, "a", true, 0}, {0, "b", true, 0},
			{0, "a", false, time.Second}, // a is now the most recent
			{0, "c", true, 0},            // evicts b
			{0, "b", true, 0},            // fresh bucket; evicts a
			{0, "c", false, time.Second}, // c is still tracked
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			b := NewBuckets(tt.rate, tt.burst, tt.keys, clk.now)
			for i, s := range tt.steps {
				clk.advance(s.advance)
				ok, retry := b.Allow(s.key)
				if ok != s.ok {
					t.Fatalf("step %d (%s): ok=%v, want %v", i, s.key, ok, s.ok)
				}
				if ok && retry != 0 {
					t.Fatalf("step %d: allowed with retryAfter %v", i, retry)
				}
				if !ok && retry != s.retry {
					t.Fatalf("step %d: retryAfter %v, want %v", i, retry, s.retry)
				}
				if b.Len() > tt.keys {
					t.Fatalf("step %d: %d keys tracked, cap %d", i, b.Len(), tt.keys)
				}
			}
		})
	}
}

func TestBucketsOffAndClockGoingBack(t *testing.T) {
	if b := NewBuckets(0, 10, 10, nil); b != nil {
		t.Fatal("rate 0 must mean no limiter")
	}
	var off *Buckets
	if ok, _ := off.Allow("x"); !ok || off.Len() != 0 {
		t.Fatal("a nil limiter must allow")
	}
	clk := newClock()
	b := NewBuckets(1, 1, 10, clk.now)
	b.Allow("a")
	clk.advance(-time.Hour) // a clock step back must not mint tokens
	if ok, retry := b.Allow("a"); ok || retry <= 0 {
		t.Fatalf("after a step back: ok=%v retry=%v", ok, retry)
	}
}

// TestBucketsExpireIdleKeys: a bucket that has refilled completely is
// forgotten on a later call, without a goroutine.
func TestBucketsExpireIdleKeys(t *testing.T) {
	clk := newClock()
	b := NewBuckets(10, 5, 100, clk.now) // refills completely in 500ms
	for i := range 50 {
		b.Allow("k" + strconv.Itoa(i))
	}
	clk.advance(499 * time.Millisecond)
	b.Allow("fresh")
	if n := b.Len(); n != 51 {
		t.Fatalf("%d keys before expiry, want 51", n)
	}
	clk.advance(time.Millisecond)
	b.Allow("fresh")
	if n := b.Len(); n != 1 {
		t.Fatalf("%d keys after expiry, want 1", n)
	}
	if b.Evicted() != 0 {
		t.Fatalf("%d evictions, want none (expiry is not eviction)", b.Evicted())
	}
}

// TestBucketsMemoryIsBounded: a million distinct keys against a cap of 1000
// leave at most 1000 tracked and the heap roughly where it was. This checks
// a memory bound, not a time.
func TestBucketsMemoryIsBounded(t *testing.T) {
	const keys, capacity = 1_000_000, 1000
	clk := newClock()
	b := NewBuckets(1, 10, capacity, clk.now)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var key []byte
	for i := range keys {
		key = strconv.AppendInt(append(key[:0], "principal-"...), int64(i), 10)
		if ok, _ := b.Allow(string(key)); !ok {
			t.Fatalf("new key %d refused", i)
		}
		if i%100_000 == 0 {
			clk.advance(time.Millisecond)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := b.Len(); n > capacity {
		t.Fatalf("%d keys tracked, cap %d", n, capacity)
	}
	if n := len(b.keys); n > capacity {
		t.Fatalf("map holds %d keys, cap %d", n, capacity)
	}
	if b.Evicted() != keys-capacity {
		t.Errorf("%d evictions, want %d", b.Evicted(), keys-capacity)
	}
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap growth after %d keys: %d KiB", keys, growth>>10)
	if growth > 50<<20 {
		t.Fatalf("heap grew by %d MiB, want under 50 MiB", growth>>20)
	}
	runtime.KeepAlive(b)
}

// TestLongKeysAreCompacted: a key's stored size does not depend on its length.
func TestLongKeysAreCompacted(t *testing.T) {
	clk := newClock()
	b := NewBuckets(1, 1, 10, clk.now)
	long := strings.Repeat("x", 1<<20)
	b.Allow(long)
	if ok, _ := b.Allow(long); ok {
		t.Fatal("a long key must still be limited")
	}
	if ok, _ := b.Allow(long + "y"); !ok {
		t.Fatal("two long keys must not share a bucket")
	}
	for k := range b.keys {
		if len(k) > MaxKeyLen {
			t.Fatalf("a key of %d bytes is stored", len(k))
		}
	}
}

func TestConcurrency(t *testing.T) {
	c := NewConcurrency(2, 3)
	a1, ok1 := c.Acquire("a")
	a2, ok2 := c.Acquire("a")
	if !ok1 || !ok2 {
		t.Fatal("a's first two slots refused")
	}
	if _, why := c.AcquireReason("a"); why != KeyFull {
		t.Fatalf("a's third slot: %v, want KeyFull", why)
	}
	b1, ok := c.Acquire("b")
	if !ok {
		t.Fatal("b refused while a is at its own cap")
	}
	if _, why := c.AcquireReason("c"); why != TotalFull {
		t.Fatalf("c: %v, want TotalFull", why)
	}
	if total, forA := c.InFlight("a"); total != 3 || forA != 2 {
		t.Fatalf("in flight %d, a %d; want 3, 2", total, forA)
	}

	a1()
	a1() // idempotent: the second call gives nothing back
	if total, forA := c.InFlight("a"); total != 2 || forA != 1 {
		t.Fatalf("after release: in flight %d, a %d; want 2, 1", total, forA)
	}
	c1, ok := c.Acquire("c")
	if !ok {
		t.Fatal("c refused after a slot was released")
	}
	if _, ok := c.Acquire("d"); ok {
		t.Fatal("total cap exceeded after a double release")
	}

	for _, r := range []func(){a2, b1, c1, a2, b1, c1} {
		r()
	}
	if total, _ := c.InFlight("a"); total != 0 || c.Len() != 0 {
		t.Fatalf("after every release: in flight %d, %d keys tracked; want 0, 0", total, c.Len())
	}
}

func TestConcurrencyNoPerKeyCap(t *testing.T) {
	c := NewConcurrency(0, 2)
	r1, _ := c.Acquire("a")
	if _, ok := c.Acquire("a"); !ok {
		t.Fatal("per-key cap 0 must mean none")
	}
	if _, why := c.AcquireReason("a"); why != TotalFull {
		t.Fatalf("got %v, want TotalFull", why)
	}
	r1()
	if c.Len() != 1 {
		t.Fatalf("%d keys, want 1", c.Len())
	}
}

// TestConcurrencyParallel: under contention the caps hold and all state
// is dropped at the end (run with -race).
func TestConcurrencyParallel(t *testing.T) {
	c := NewConcurrency(3, 5)
	done := make(chan struct{})
	var peak [2]int
	results := make(chan [2]int, 8)
	for g := range 8 {
		go func() {
			local := [2]int{}
			for i := range 2000 {
				key := "k" + strconv.Itoa((g+i)%3)
				r, ok := c.Acquire(key)
				if !ok {
					continue
				}
				total, forKey := c.InFlight(key)
				local[0], local[1] = max(local[0], total), max(local[1], forKey)
				r()
			}
			results <- local
		}()
	}
	go func() {
		for range 8 {
			l := <-results
			peak[0], peak[1] = max(peak[0], l[0]), max(peak[1], l[1])
		}
		close(done)
	}()
	<-done
	if peak[0] > 5 || peak[1] > 3 {
		t.Fatalf("peaks %v exceed caps (5 total, 3 per key)", peak)
	}
	if c.Len() != 0 {
		t.Fatalf("%d keys left", c.Len())
	}
}
