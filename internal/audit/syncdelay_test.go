package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tracked wraps every file the Log opens (WrapFile), counting syncs and the
// bytes written to each file since its last sync; failSync makes Sync fail.
type tracked struct {
	mu       sync.Mutex
	files    []*trackedFile
	writes   atomic.Int64
	failSync atomic.Bool
}

type trackedFile struct {
	File
	t        *tracked
	syncs    int
	unsynced int // bytes written since the last successful sync
}

func (t *tracked) wrap(f File) File {
	t.mu.Lock()
	defer t.mu.Unlock()
	tf := &trackedFile{File: f, t: t}
	t.files = append(t.files, tf)
	return tf
}

func (f *trackedFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.t.writes.Add(1)
	f.t.mu.Lock()
	f.unsynced += n
	f.t.mu.Unlock()
	return n, err
}

func (f *trackedFile) Sync() error {
	if f.t.failSync.Load() {
		return syscall.EIO
	}
	err := f.File.Sync()
	f.t.mu.Lock()
	f.syncs++
	if err == nil {
		f.unsynced = 0
	}
	f.t.mu.Unlock()
	return err
}

// syncs is the number of syncs of every file so far; unsynced, the bytes
// written to the current file since its last sync.
func (t *tracked) syncs() (n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range t.files {
		n += f.syncs
	}
	return n
}

func (t *tracked) unsynced() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.files[len(t.files)-1].unsynced
}

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// lines counts the complete lines in the file at path (written, synced or not).
func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

func result(i int) Event {
	ev := event(i)
	ev.Stage, ev.Call = StageResult, NewCallID()
	return ev
}

// submitEach submits k records one at a time, each once the one before is
// written, so that each is a group commit of its own with no waiter.
func submitEach(t *testing.T, l *Log, path string, k int) {
	t.Helper()
	base := lines(t, path)
	for i := range k {
		if err := l.Submit(result(i)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a submitted record written", func() bool { return lines(t, path) == base+i+1 })
	}
}

// TestSubmitSyncDeferred: group commits of submitted records alone are
// written at once but not synced, until something else syncs the file:
// an Append, a Checkpoint, Close or SubmitSyncDelay; that one sync covers
// them all. A negative delay syncs every group commit.
func TestSubmitSyncDeferred(t *testing.T) {
	const K = 5
	for _, tc := range []struct {
		name  string
		delay time.Duration
		then  func(t *testing.T, l *Log) // the event that syncs
		syncs int                        // syncs after submitEach, before then
	}{
		{"append", time.Hour, func(t *testing.T, l *Log) {
			if err := l.Append(context.Background(), event(99)); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"checkpoint", time.Hour, func(t *testing.T, l *Log) {
			if err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"close", time.Hour, func(t *testing.T, l *Log) {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"delay", time.Second, nil, 0},
		{"negative delay: every batch", -1, nil, K},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, v, _ := newKeys(t)
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			tr := &tracked{}
			l, err := Open(path, s, Options{Logger: quiet, WrapFile: tr.wrap, SubmitSyncDelay: tc.delay})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			start := time.Now()
			submitEach(t, l, path, K)
			if tc.delay < 0 {
				waitFor(t, "a sync per batch", func() bool { return tr.syncs() == K })
			}
			got := tr.syncs()
			if tc.delay > 0 && time.Since(start) >= tc.delay {
				t.Skip("the machine was too slow to observe the delay")
			}
			if got != tc.syncs {
				t.Fatalf("after %d submitted batches: %d syncs, want %d", K, got, tc.syncs)
			}
			if tc.syncs == 0 && tr.unsynced() == 0 {
				t.Fatal("submitted records not written")
			}
			if tc.then != nil {
				tc.then(t, l)
			} else if tc.delay > 0 {
				waitFor(t, "the deferred sync", func() bool { return tr.syncs() > 0 })
				if e := time.Since(start); e < tc.delay {
					t.Fatalf("synced after %v, before the delay %v", e, tc.delay)
				}
				time.Sleep(tc.delay / 2) // no second sync without new writes
			}
			if got, want := tr.syncs(), tc.syncs+1; tc.delay > 0 && got != want {
				t.Fatalf("%d syncs, want exactly %d", got, want)
			}
			if tr.unsynced() != 0 {
				t.Fatalf("%d bytes left unsynced", tr.unsynced())
			}
			if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) {
				t.Fatal(err)
			}
			rep, err := Verify(bytes.NewReader(readAll(t, path)), v)
			if err != nil || rep.Records < K || rep.Unsigned() != 0 {
				t.Fatalf("verify: %+v %v", rep, err)
			}
		})
	}
}

// TestSubmitSyncFailure: a deferred sync that fails, at whichever point it
// is done, fails the log (Append and Submit refuse with ErrUnavailable) and
// reports every submitted record it covered as lost.
func TestSubmitSyncFailure(t *testing.T) {
	const K = 3
	for _, tc := range []struct {
		name  string
		delay time.Duration
		then  func(l *Log) error
	}{
		{"delay", 20 * time.Millisecond, func(l *Log) error {
			for deadline := time.Now().Add(10 * time.Second); l.Err() == nil && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			return l.Err()
		}},
		{"append", time.Hour, func(l *Log) error { return l.Append(context.Background(), event(9)) }},
		{"checkpoint", time.Hour, func(l *Log) error { return l.Checkpoint() }},
		{"close", time.Hour, func(l *Log) error { return l.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := newKeys(t)
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			tr := &tracked{}
			var lost atomic.Int64
			l, err := Open(path, s, Options{Logger: quiet, WrapFile: tr.wrap, SubmitSyncDelay: tc.delay,
				OnLost: func(n int, err error) {
					if !errors.Is(err, ErrUnavailable) {
						t.Errorf("OnLost err = %v", err)
					}
					lost.Add(int64(n))
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			tr.failSync.Store(true)
			submitEach(t, l, path, K)
			if err := tc.then(l); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("= %v, want ErrUnavailable", err)
			}
			// The failure shows (Err) a moment before OnLost is told.
			waitFor(t, "OnLost", func() bool { return lost.Load() >= K })
			if got := lost.Load(); got != K {
				t.Fatalf("OnLost heard of %d records, want %d", got, K)
			}
			if tc.name == "close" {
				return
			}
			if err := l.Submit(result(0)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Submit after the failed sync = %v", err)
			}
			if err := l.Append(context.Background(), event(0)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Append after the failed sync = %v", err)
			}
		})
	}
}

// TestRotationSyncsDeferred: a rotation (by size, right after a group
// commit of submitted records alone) leaves nothing unsynced in the file
// it renames away, and every record verifies across the files.
func TestRotationSyncsDeferred(t *testing.T) {
	s, v, _ := newKeys(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	tr := &tracked{}
	l, err := Open(path, s, Options{Logger: quiet, WrapFile: tr.wrap, SubmitSyncDelay: time.Hour, RotateBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	const N = 40
	for i := range N { // one group commit each
		w := tr.writes.Load()
		if err := l.Submit(result(i)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a submitted record written", func() bool { return tr.writes.Load() > w })
	}
	waitFor(t, "three rotations", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.files) >= 4
	})
	tr.mu.Lock()
	for i, f := range tr.files[:len(tr.files)-1] {
		if f.unsynced != 0 || f.syncs == 0 {
			t.Errorf("rotated file %d: %d bytes unsynced, %d syncs", i, f.unsynced, f.syncs)
		}
	}
	tr.mu.Unlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if tr.unsynced() != 0 {
		t.Fatalf("after Close: %d bytes unsynced", tr.unsynced())
	}
	files, _, _, err := Sequence(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyFiles(files, v, VerifyOptions{})
	if err != nil || rep.Records != N || rep.Unsigned() != 0 {
		t.Fatalf("VerifyFiles: %+v %v", rep, err)
	}
}
