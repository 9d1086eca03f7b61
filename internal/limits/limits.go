// Package limits holds mcpgate's rate and concurrency limiters, keyed by
// principal (and by principal and tool). Both are bounded in memory whatever
// the keys: the token-bucket limiter tracks at most a fixed number of keys
// and forgets the least recently used one when full; the concurrency
// limiter holds state only for keys with a call in flight, and at most a
// fixed number of calls are in flight. Neither starts a goroutine: expiry is
// lazy, done by the calls themselves. Time comes from an injectable clock.
package limits

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"sync"
	"time"
)

// MaxKeyLen is the longest key stored as it is; a longer key is stored as
// its SHA-256 digest, so a key's size does not depend on what a client sends
// (a 4 MiB tool name, say).
const MaxKeyLen = 256

// compact returns key, or its digest if it is longer than MaxKeyLen.
func compact(key string) string {
	if len(key) <= MaxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Buckets is a token-bucket rate limiter per key: each key may take Burst
// tokens at once, refilled at Rate tokens a second. It tracks at most
// MaxKeys keys. A bucket left alone long enough to refill completely is the
// same as a fresh one and is forgotten; when MaxKeys keys are tracked and a
// new one arrives, the least recently used key is forgotten (its next
// request starts from a full bucket). A nil *Buckets allows everything.
// Safe for concurrent use.
type Buckets struct {
	mu      sync.Mutex
	rate    float64       // tokens per second
	burst   float64       // bucket size
	fullIn  time.Duration // time for an empty bucket to refill completely
	maxKeys int
	now     func() time.Time
	keys    map[string]*list.Element // of *bucket
	lru     list.List                // front: most recently used
	evicted uint64
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

// NewBuckets makes a limiter of rate tokens a second and burst tokens per
// key, tracking at most maxKeys keys. It returns nil (no limit) if rate is 0
// or less. now is the clock; nil means time.Now. burst and maxKeys below 1
// are taken as 1.
func NewBuckets(rate float64, burst, maxKeys int, now func() time.Time) *Buckets {
	if rate <= 0 || math.IsNaN(rate) {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	burst, maxKeys = max(burst, 1), max(maxKeys, 1)
	fullIn := time.Duration(math.Ceil(float64(burst) / rate * float64(time.Second)))
	if fullIn <= 0 || float64(burst)/rate > float64(math.MaxInt64/2)/float64(time.Second) {
		fullIn = math.MaxInt64 / 2 // a rate so low its buckets never refill in practice
	}
	return &Buckets{
		rate:    rate,
		burst:   float64(burst),
		fullIn:  fullIn,
		maxKeys: maxKeys,
		now:     now,
		keys:    make(map[string]*list.Element),
	}
}

// Allow takes a token from key's bucket. If there is none, it reports false
// and how long until there is one; a refused request takes nothing.
func (b *Buckets) Allow(key string) (ok bool, retryAfter time.Duration) {
	if b == nil {
		return true, 0
	}
	key = compact(key)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.expire(now)
	bk := b.lookup(key, now)
	if elapsed := now.Sub(bk.last); elapsed > 0 {
		bk.tokens = math.Min(b.burst, bk.tokens+elapsed.Seconds()*b.rate)
	}
	if now.After(bk.last) {
		bk.last = now
	}
	if bk.tokens >= 1 {
		bk.tokens--
		return true, 0
	}
	// In whole microseconds, rounded up, less a nanosecond's slack for
	// floating-point noise in the refill.
	micros := math.Min(math.Ceil((1-bk.tokens)/b.rate*1e6-1e-3), 1e15) // 1e15µs: about 31 years
	return false, max(time.Duration(micros)*time.Microsecond, time.Microsecond)
}

// lookup returns key's bucket, making it (full) if it is not tracked, and
// marks it most recently used.
func (b *Buckets) lookup(key string, now time.Time) *bucket {
	if e, ok := b.keys[key]; ok {
		b.lru.MoveToFront(e)
		return e.Value.(*bucket)
	}
	if len(b.keys) >= b.maxKeys {
		// Full: forget the least recently used key, reusing its element.
		e := b.lru.Back()
		old := e.Value.(*bucket)
		delete(b.keys, old.key)
		b.evicted++
		*old = bucket{key: key, tokens: b.burst, last: now}
		b.lru.MoveToFront(e)
		b.keys[key] = e
		return old
	}
	bk := &bucket{key: key, tokens: b.burst, last: now}
	b.keys[key] = b.lru.PushFront(bk)
	return bk
}

// expire forgets the least recently used buckets that have refilled
// completely: they are indistinguishable from fresh ones.
func (b *Buckets) expire(now time.Time) {
	for e := b.lru.Back(); e != nil; e = b.lru.Back() {
		bk := e.Value.(*bucket)
		if now.Sub(bk.last) < b.fullIn {
			return
		}
		b.lru.Remove(e)
		delete(b.keys, bk.key)
	}
}

// Len is the number of keys tracked.
func (b *Buckets) Len() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.keys)
}

// Evicted is how many keys were forgotten because the limiter was full
// (not counting buckets forgotten because they had refilled).
func (b *Buckets) Evicted() uint64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.evicted
}

// Concurrency caps the calls in flight per key and in total. State for a
// key exists only while it has a call in flight, so the number of keys
// tracked never exceeds the total cap. Safe for concurrent use.
type Concurrency struct {
	mu       sync.Mutex
	perKey   int // 0: no per-key cap
	total    int
	inFlight int
	keys     map[string]int
}

// NewConcurrency makes a limiter of at most perKey calls in flight per key
// (0: no per-key cap) and total in all (at least 1).
func NewConcurrency(perKey, total int) *Concurrency {
	return &Concurrency{perKey: max(perKey, 0), total: max(total, 1), keys: make(map[string]int)}
}

// Reason why Acquire refused a slot.
type Reason int

const (
	// Granted: not refused.
	Granted Reason = iota
	// KeyFull: the key has its cap of calls in flight.
	KeyFull
	// TotalFull: the whole limiter has its cap of calls in flight.
	TotalFull
)

// Acquire takes a slot for key. If ok, release gives it back; calling
// release more than once has no further effect.
func (c *Concurrency) Acquire(key string) (release func(), ok bool) {
	release, why := c.AcquireReason(key)
	return release, why == Granted
}

// AcquireReason is Acquire, saying which cap refused the slot.
func (c *Concurrency) AcquireReason(key string) (release func(), why Reason) {
	key = compact(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.keys[key]
	switch {
	case c.perKey > 0 && n >= c.perKey:
		return nil, KeyFull
	case c.inFlight >= c.total:
		return nil, TotalFull
	}
	c.keys[key] = n + 1
	c.inFlight++
	var once sync.Once
	return func() { once.Do(func() { c.release(key) }) }, Granted
}

func (c *Concurrency) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight--
	if n := c.keys[key] - 1; n > 0 {
		c.keys[key] = n
	} else {
		delete(c.keys, key)
	}
}

// InFlight is the number of calls in flight, in total and for key.
func (c *Concurrency) InFlight(key string) (total, forKey int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inFlight, c.keys[compact(key)]
}

// Len is the number of keys with a call in flight.
func (c *Concurrency) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys)
}
