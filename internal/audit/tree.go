package audit

import (
	"encoding/hex"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// tree is the log's Merkle tree (RFC 6962, as golang.org/x/mod/sumdb/tlog
// hashes it) kept as its right edge only: the roots of the complete subtrees
// that make up a tree of n leaves, largest first, one per set bit of n. That
// is O(log n) hashes, and all the log ever needs: the root at the current
// size (checkpoints always cover every record before them), the next leaf's
// position, and the hash the next record chains to. It is also exactly what a
// continuation header carries so that a rotated file's successor continues
// the same tree.
type tree struct {
	n        int64
	frontier []tlog.Hash // len == bits.OnesCount64(uint64(n))
	last     tlog.Hash   // leaf hash of record n-1 (zero when n == 0)
}

// add appends the leaf hash of record n. Like incrementing a binary
// counter: every trailing one bit of n is a complete subtree of the same
// size as the one being carried, and merges with it.
func (t *tree) add(leaf tlog.Hash) {
	h := leaf
	for s := t.n; s&1 == 1; s >>= 1 {
		last := len(t.frontier) - 1
		h = tlog.NodeHash(t.frontier[last], h)
		t.frontier = t.frontier[:last]
	}
	t.frontier = append(t.frontier, h)
	t.n++
	t.last = leaf
}

// root is the tree hash at size n: the right edge folded from the
// smallest subtree up (RFC 6962 splits at the largest power of two, which is
// the first frontier subtree).
func (t *tree) root() tlog.Hash {
	if len(t.frontier) == 0 {
		h, _ := tlog.TreeHash(0, nil) // the empty tree's hash; reads nothing
		return h
	}
	h := t.frontier[len(t.frontier)-1]
	for i := len(t.frontier) - 2; i >= 0; i-- {
		h = tlog.NodeHash(t.frontier[i], h)
	}
	return h
}

// prev is the prev a record following record n-1 must carry.
func (t *tree) prev() string {
	if t.n == 0 {
		return zeroPrev
	}
	return hex.EncodeToString(t.last[:])
}

// restore sets the tree from a continuation header's fields; ok is false if
// they cannot describe a tree (wrong number of frontier hashes).
func restore(n int64, last tlog.Hash, frontier []tlog.Hash) (tree, bool) {
	if n < 0 || bits.OnesCount64(uint64(n)) != len(frontier) || (n == 0) != (last == tlog.Hash{}) {
		return tree{}, false
	}
	return tree{n: n, frontier: append([]tlog.Hash(nil), frontier...), last: last}, true
}
