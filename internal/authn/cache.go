package authn

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// tokenKey is what a cache knows of a token: its SHA-256, so that a heap
// dump or a debugger shows no usable credential.
type tokenKey [sha256.Size]byte

// cacheEntry is one remembered answer: a principal, or the error to repeat.
type cacheEntry struct {
	key     tokenKey
	p       *Principal
	err     error
	expires time.Time
}

// lruCache is a bounded least-recently-used map of introspection answers.
// Its memory is bounded by size entries whatever tokens arrive.
type lruCache struct {
	mu    sync.Mutex
	size  int
	ll    *list.List // front: most recently used; values are *cacheEntry
	items map[tokenKey]*list.Element
}

func newLRUCache(size int) *lruCache {
	return &lruCache{size: size, ll: list.New(), items: make(map[tokenKey]*list.Element, min(size, 1024))}
}

// get returns the live entry for k; an expired one is dropped.
func (c *lruCache) get(k tokenKey, now time.Time) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.items, k)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return e, true
}

// put stores e, evicting the least recently used entry when full.
func (c *lruCache) put(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.key]; ok {
		el.Value = e
		c.ll.MoveToFront(el)
		return
	}
	for c.ll.Len() >= c.size {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).key)
	}
	c.items[e.key] = c.ll.PushFront(e)
}

func (c *lruCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// flightGroup coalesces concurrent lookups of one token into one request:
// the first caller does the work, the others wait for its answer.
type flightGroup struct {
	mu    sync.Mutex
	calls map[tokenKey]*flight
}

type flight struct {
	done chan struct{}
	p    *Principal
	err  error
}

// do runs fn once for all concurrent callers with key k.
func (g *flightGroup) do(k tokenKey, fn func() (*Principal, error)) (*Principal, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[tokenKey]*flight{}
	}
	if f, ok := g.calls[k]; ok {
		g.mu.Unlock()
		<-f.done
		return f.p, f.err
	}
	f := &flight{done: make(chan struct{})}
	g.calls[k] = f
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.calls, k)
		g.mu.Unlock()
		close(f.done)
	}()
	f.p, f.err = fn()
	return f.p, f.err
}
