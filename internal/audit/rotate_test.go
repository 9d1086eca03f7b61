package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestTreeMatchesTlog: the O(log n) right-edge tree gives tlog's root at
// every size, so checkpoints written from it verify with any RFC 6962 tool.
func TestTreeMatchesTlog(t *testing.T) {
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var tr tree
	for n := int64(0); n < 600; n++ {
		want, err := tlog.TreeHash(n, reader)
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.root(); got != want {
			t.Fatalf("size %d: root %v, want %v", n, got, want)
		}
		if len(tr.frontier) > 64 {
			t.Fatalf("size %d: %d hashes kept", n, len(tr.frontier))
		}
		leaf := tlog.RecordHash([]byte(fmt.Sprint("record ", n)))
		hs, err := tlog.StoredHashesForRecordHash(n, leaf, reader)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		tr.add(leaf)
	}
}

func readAll(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSubmit: Submit returns before the fsync (it does not wait for the
// writer held in Sync), every submitted record is on file after Close, and
// Submit fails fast once the log failed or closed.
func TestSubmit(t *testing.T) {
	s, v, _ := newKeys(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	c := &counting{gate: make(chan struct{})}
	l, err := Open(path, s, Options{Logger: quiet, WrapFile: func(f File) File { c.File = f; return c }})
	if err != nil {
		t.Fatal(err)
	}
	// The first sync is held: an Append would block; Submit must not.
	appended := make(chan error, 1)
	go func() { appended <- l.Append(context.Background(), event(0)) }()
	for i := 1; i <= 100; i++ {
		ev := event(i)
		ev.Stage, ev.Call = StageResult, NewCallID()
		if err := l.Submit(ev); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-appended:
		t.Fatalf("Append returned (%v) while its sync was held", err)
	default:
	}
	close(c.gate)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(bytes.NewReader(readAll(t, path)), v)
	if err != nil || rep.Records != 101 || rep.Unsigned() != 0 {
		t.Fatalf("after Close: %+v %v; want all 101 records signed", rep, err)
	}
	if err := l.Submit(event(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close = %v", err)
	}

	// A failed write loses submitted records: OnLost hears of them, and
	// the next Submit fails at once.
	path2 := filepath.Join(t.TempDir(), "audit.jsonl")
	c2 := &counting{}
	var lost atomic.Int64
	l2, err := Open(path2, s, Options{Logger: quiet, WrapFile: func(f File) File { c2.File = f; return c2 },
		OnLost: func(n int, err error) { lost.Add(int64(n)) }})
	if err != nil {
		t.Fatal(err)
	}
	c2.failSync.Store(true)
	if err := l2.Submit(event(0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for l2.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := l2.Submit(event(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Submit after a failed sync = %v, want ErrUnavailable", err)
	}
	if lost.Load() != 1 {
		t.Fatalf("OnLost heard of %d records, want 1", lost.Load())
	}
	l2.Close()
}

// TestSubmitCloseRace: records submitted concurrently with Close are either
// refused (ErrClosed) or on file; none is acknowledged and lost.
func TestSubmitCloseRace(t *testing.T) {
	s, v, _ := newKeys(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, s, Options{Logger: quiet, SubmitQueue: 8})
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				ev := event(i)
				ev.Session = fmt.Sprintf("g%d-%d", g, i)
				if err := l.Submit(ev); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
				ok.Add(1)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	rep, err := Verify(bytes.NewReader(readAll(t, path)), v)
	if err != nil || rep.Records != ok.Load() || rep.Unsigned() != 0 {
		t.Fatalf("verify: %+v %v; %d submits acknowledged", rep, err, ok.Load())
	}
}

// rotating writes n records to a log that rotates every few records.
func rotating(t testing.TB, s note.Signer, dir string, n int, opts Options) string {
	t.Helper()
	path := filepath.Join(dir, "audit.jsonl")
	opts.Logger = quiet
	if opts.RotateBytes == 0 && opts.RotateAge == 0 {
		opts.RotateBytes = 2000 // about 5 records a file
	}
	l, err := Open(path, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Append(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRotation(t *testing.T) {
	s, v, _ := newKeys(t)
	dir := t.TempDir()
	path := rotating(t, s, dir, 40, Options{})
	files, missing, stray, err := Sequence(path)
	if err != nil || missing != "" || len(stray) != 0 {
		t.Fatalf("Sequence: %v %q %v %v", files, missing, stray, err)
	}
	if len(files) < 4 || files[len(files)-1] != path {
		t.Fatalf("files %v: want several, ending with the log path", files)
	}
	for i, f := range files[:len(files)-1] {
		if !strings.HasPrefix(filepath.Base(f), "audit.jsonl.") || !strings.HasSuffix(f, fmt.Sprintf(".%d", i)) {
			t.Fatalf("rotated file %d is named %s", i, f)
		}
	}
	rep, err := VerifyFiles(files, v, VerifyOptions{})
	if err != nil || rep.Records != 40 || rep.Start != 0 || rep.Unsigned() != 0 || rep.Files != len(files) || rep.TrustedHeader != "" {
		t.Fatalf("VerifyFiles: %+v %v", rep, err)
	}

	// One rotated file alone verifies, trusting its header, and says so.
	mid := files[2]
	rep, err = Verify(bytes.NewReader(readAll(t, mid)), v)
	if err != nil || rep.Start == 0 || rep.TrustedHeader == "" || rep.Predecessor != filepath.Base(files[1]) {
		t.Fatalf("Verify of %s alone: %+v %v", mid, rep, err)
	}

	// Reopening continues the same tree: more records, still one sequence.
	l, err := Open(path, s, Options{Logger: quiet, RotateBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	for i := 40; i < 50; i++ {
		if err := l.Append(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	files, _, _, _ = Sequence(path)
	if rep, err := VerifyFiles(files, v, VerifyOptions{}); err != nil || rep.Records != 50 {
		t.Fatalf("after reopening: %+v %v", rep, err)
	}
}

func TestRotationByAge(t *testing.T) {
	s, v, _ := newKeys(t)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, s, Options{Logger: quiet, RotateAge: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := l.Append(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		now = now.Add(35 * time.Minute) // a new file every second record
		mu.Unlock()
	}
	l.Close()
	files, _, _, err := Sequence(path)
	if err != nil || len(files) != 3 {
		t.Fatalf("files %v %v; want 3", files, err)
	}
	if !strings.Contains(files[0], ".20260301T011000Z.0") {
		t.Fatalf("first rotated file %s: want the rotation time in its name", files[0])
	}
	if rep, err := VerifyFiles(files, v, VerifyOptions{}); err != nil || rep.Records != 6 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// TestRotationCutShort: a crash after the rename, before the new file's
// header, leaves no (or an empty) log file: Open continues the newest
// rotated file rather than starting a new tree.
func TestRotationCutShort(t *testing.T) {
	s, v, _ := newKeys(t)
	for _, how := range []string{"missing", "empty", "torn header"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			path := rotating(t, s, dir, 12, Options{})
			files, _, _, _ := Sequence(path)
			// Drop the live file's records: keep the state right after a rename.
			last := files[len(files)-1]
			os.Remove(last)
			switch how {
			case "empty":
				os.WriteFile(path, nil, 0o600)
			case "torn header":
				os.WriteFile(path, []byte(`{"type":"continuation","note":"x`), 0o600)
			}
			files, _, _, _ = Sequence(files[len(files)-2])
			before, err := VerifyFiles(files, v, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			l, err := Open(path, s, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Append(context.Background(), event(99)); err != nil {
				t.Fatal(err)
			}
			l.Close()
			files, _, _, _ = Sequence(path)
			rep, err := VerifyFiles(files, v, VerifyOptions{})
			if err != nil || rep.Records != before.Records+1 || rep.Start != 0 {
				t.Fatalf("after recovery: %+v %v; want %d records from 0", rep, err, before.Records+1)
			}
		})
	}
}

// TestRotationTamper: problems across files are named by file and line.
func TestRotationTamper(t *testing.T) {
	s, v, _ := newKeys(t)
	_, other, _ := newKeys(t)
	tests := []struct {
		name   string
		tamper func(t *testing.T, files []string) []string // returns the files to verify
		kind   Kind
		file   int // index into the original files
		line   int // 0: the file's last line + 1
		key    note.Verifier
	}{
		{"delete a middle file", func(t *testing.T, f []string) []string {
			os.Remove(f[2])
			seq, missing, stray, err := Sequence(f[len(f)-1])
			if err != nil || missing != f[2] || len(stray) != 2 {
				t.Fatalf("Sequence: %v %q %v %v", seq, missing, stray, err)
			}
			return append(f[:2:2], f[3:]...)
		}, Deleted, 3, 1, v},
		{"truncate a rotated file", func(t *testing.T, f []string) []string {
			b := readAll(t, f[1])
			ls := strings.SplitAfter(string(b), "\n")
			os.WriteFile(f[1], []byte(strings.Join(ls[:len(ls)-4], "")), 0o600) // records and checkpoint cut
			return f
		}, Truncated, 1, 0, v},
		{"modify a record in a rotated file", func(t *testing.T, f []string) []string {
			b := readAll(t, f[1])
			os.WriteFile(f[1], bytes.Replace(b, []byte(`"alice"`), []byte(`"mallory"`), 1), 0o600)
			return f
		}, Modified, 1, 2, v},
		{"forge a header", func(t *testing.T, f []string) []string {
			b := readAll(t, f[2])
			os.WriteFile(f[2], bytes.Replace(b, []byte("mcpgate-audit-continuation 2"), []byte("mcpgate-audit-continuation 7"), 1), 0o600)
			return f
		}, BadSignature, 2, 1, v},
		{"files out of order", func(t *testing.T, f []string) []string {
			f[1], f[2] = f[2], f[1]
			return f
		}, Deleted, 2, 1, v},
		{"another key", func(t *testing.T, f []string) []string { return f }, BadSignature, 0, 0, other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := rotating(t, s, t.TempDir(), 30, Options{})
			files, _, _, _ := Sequence(path)
			orig := append([]string(nil), files...)
			rep, err := VerifyFiles(tt.tamper(t, files), tt.key, VerifyOptions{})
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("VerifyFiles = %+v, %v; want a problem", rep, err)
			}
			line := tt.line
			if line == 0 && tt.kind == Truncated {
				line = strings.Count(string(readAll(t, orig[tt.file])), "\n") + 1
			} else if line == 0 {
				line = p.Line // any line of the named file
			}
			if p.Kind != tt.kind || p.File != orig[tt.file] || p.Line != line {
				t.Fatalf("problem %v; want %v at %s:%d", p, tt.kind, orig[tt.file], line)
			}
		})
	}
}

// TestCheckpointCopy: every checkpoint is copied; with the copy, a log cut
// short together with its last checkpoint (which the file alone cannot
// show) fails as truncated.
func TestCheckpointCopy(t *testing.T) {
	s, v, _ := newKeys(t)
	dir := t.TempDir()
	cp := filepath.Join(dir, "elsewhere.ckpt")
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path, s, Options{Logger: quiet, CheckpointCopy: cp})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := l.Append(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
		if i == 5 {
			l.Checkpoint()
			if rep, err := VerifyFiles([]string{path}, v, VerifyOptions{Checkpoint: readAll(t, cp)}); err != nil || rep.External != 6 {
				t.Fatalf("copy after the first checkpoint: %+v %v", rep, err)
			}
		}
	}
	l.Close()
	ckpt := readAll(t, cp)
	rep, err := VerifyFiles([]string{path}, v, VerifyOptions{Checkpoint: ckpt})
	if err != nil || rep.External != 10 {
		t.Fatalf("untouched: %+v %v", rep, err)
	}
	// Cut the last 3 records and the final checkpoint: alone the file holds.
	ls := strings.SplitAfter(string(readAll(t, path)), "\n")
	cut := strings.Join(ls[:len(ls)-5], "")
	os.WriteFile(path, []byte(cut), 0o600)
	if _, err := Verify(strings.NewReader(cut), v); err != nil {
		t.Fatalf("the cut file alone: %v (expected to verify: that is the gap the copy closes)", err)
	}
	_, err = VerifyFiles([]string{path}, v, VerifyOptions{Checkpoint: ckpt})
	var p *Problem
	if !errors.As(err, &p) || p.Kind != Truncated || !strings.Contains(p.Msg, "the log has 7 records, the checkpoint covers 10") || p.File != path || p.Line != 9 {
		t.Fatalf("with the copy: %v", err)
	}
	// A log rewritten under the same key does not match the copy.
	os.Remove(path)
	l, err = Open(path, s, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		ev := event(i)
		ev.Session = "rewritten"
		l.Append(context.Background(), ev)
	}
	l.Close()
	if _, err := VerifyFiles([]string{path}, v, VerifyOptions{Checkpoint: ckpt}); !errors.As(err, &p) || p.Kind != Modified {
		t.Fatalf("rewritten log: %v", err)
	}
	// A copy under another key is refused.
	other, _, _ := newKeys(t)
	bad, _ := note.Sign(&note.Note{Text: formatCheckpoint("x", 1, tlog.Hash{})}, other)
	if _, err := VerifyFiles([]string{path}, v, VerifyOptions{Checkpoint: bad}); err == nil || errors.As(err, &p) {
		t.Fatalf("copy signed by another key: %v", err)
	}
}

// BenchmarkAppendConcurrent measures durable appends (each acknowledged
// after its fsync, shared by group commit) from parallel callers, on a
// real file in the test's temp directory.
func BenchmarkAppendConcurrent(b *testing.B) {
	s, _, _ := newKeys(b)
	l, err := Open(filepath.Join(b.TempDir(), "audit.jsonl"), s, Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetParallelism(64) // many calls in flight, as at a busy gateway
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ev := event(0)
		for pb.Next() {
			if err := l.Append(context.Background(), ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
