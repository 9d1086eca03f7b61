package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func newKeys(t testing.TB) (note.Signer, note.Verifier, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "audit.test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v, skey
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func event(i int) Event {
	return Event{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Principal: "alice", AuthMethod: "api_key",
		Method: "tools/call", Upstream: "demo", Name: fmt.Sprintf("tool-%d", i), Decision: Allow,
		ArgsSHA256: ArgsDigest([]byte(`{}`)), Outcome: "ok", LatencyMS: 3, BytesIn: 10, BytesOut: 20, HTTPStatus: 200,
	}
}

// sample writes records 0..9, a checkpoint, records 10..14 and the final
// checkpoint from Close: lines 1-10, 11, 12-16, 17.
func sample(t testing.TB, s note.Signer) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, s, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 15 {
		if err := l.Append(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
		if i == 9 {
			if err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 17 {
		t.Fatalf("sample has %d lines, want 17", len(lines))
	}
	return lines
}

func join(lines []string) string { return strings.Join(lines, "\n") + "\n" }

func TestVerifyTamper(t *testing.T) {
	s, v, _ := newKeys(t)
	lines := sample(t, s)
	_, other, _ := newKeys(t)

	rep, err := Verify(strings.NewReader(join(lines)), v)
	if err != nil || rep.Records != 15 || rep.Checkpoints != 2 || rep.VerifiedSize != 15 || rep.Unsigned() != 0 {
		t.Fatalf("untampered: %+v, %v", rep, err)
	}

	edit := func(f func(l []string) []string) string {
		return join(f(append([]string(nil), lines...)))
	}
	forged := strings.Replace(lines[4], `"tool-4"`, `"forged"`, 1) // index 4, prev of record 3: a careful forgery
	badSig := func() string {
		var c checkpointOut
		if err := json.Unmarshal([]byte(lines[10]), &c); err != nil {
			t.Fatal(err)
		}
		i := strings.LastIndex(c.Note, " ") + 5
		b := []byte(c.Note)
		b[i] ^= 1
		c.Note = string(b)
		out, _ := json.Marshal(c)
		return string(out)
	}()

	tests := []struct {
		name  string
		file  string
		key   note.Verifier
		kind  Kind
		line  int
		index int64
	}{
		{"modify a field", edit(func(l []string) []string {
			l[3] = strings.Replace(l[3], `"alice"`, `"mallory"`, 1)
			return l
		}), v, Modified, 4, 3},
		{"modify the last record before a checkpoint", edit(func(l []string) []string {
			l[15] = strings.Replace(l[15], `"alice"`, `"mallory"`, 1)
			return l
		}), v, Modified, 17, 10},
		{"modify a record followed by a checkpoint", edit(func(l []string) []string {
			l[9] = strings.Replace(l[9], `"allow"`, `"deny"`, 1)
			return l
		}), v, Modified, 10, 9},
		{"delete a line", edit(func(l []string) []string { return append(l[:5], l[6:]...) }), v, Deleted, 6, 5},
		{"delete the first line", edit(func(l []string) []string { return l[1:] }), v, Deleted, 1, 0},
		{"swap two lines", edit(func(l []string) []string { l[2], l[3] = l[3], l[2]; return l }), v, Reordered, 3, 3},
		{"insert a forged line", edit(func(l []string) []string {
			return append(l[:4], append([]string{forged}, l[4:]...)...)
		}), v, Inserted, 5, 4},
		{"insert a forged line with a wrong prev", edit(func(l []string) []string {
			f := regexp.MustCompile(`"prev":"[0-9a-f]{64}"`).ReplaceAllString(forged, `"prev":"`+strings.Repeat("f", 64)+`"`)
			return append(l[:4], append([]string{f}, l[4:]...)...)
		}), v, Inserted, 5, 4},
		{"duplicate a line", edit(func(l []string) []string {
			return append(l[:5], append([]string{l[2]}, l[5:]...)...)
		}), v, Inserted, 6, 2},
		{"truncate after a checkpoint", edit(func(l []string) []string { return append(l[:13], l[16]) }), v, Truncated, 14, 12},
		{"delete records before a checkpoint", edit(func(l []string) []string { return append(l[:8], l[10:]...) }), v, Deleted, 9, 8},
		{"corrupt a signature", edit(func(l []string) []string { l[10] = badSig; return l }), v, BadSignature, 11, -1},
		{"wrong key", join(lines), other, BadSignature, 11, -1},
		{"garbage line", edit(func(l []string) []string {
			return append(l[:2], append([]string{"garbage"}, l[2:]...)...)
		}), v, Malformed, 3, -1},
		{"move a checkpoint", edit(func(l []string) []string {
			cp := l[10]
			l = append(l[:10], l[11:]...)
			return append(l[:12], append([]string{cp}, l[12:]...)...)
		}), v, Inserted, 11, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Verify(strings.NewReader(tt.file), tt.key)
			var p *Problem
			if !errors.As(err, &p) || rep.Problem != p {
				t.Fatalf("Verify = %+v, %v; want a problem", rep, err)
			}
			if p.Kind != tt.kind || p.Line != tt.line || p.Index != tt.index {
				t.Fatalf("problem %v (kind %v line %d index %d); want kind %v line %d index %d", p, p.Kind, p.Line, p.Index, tt.kind, tt.line, tt.index)
			}
		})
	}
}

func TestVerifyTornTailAndUnsigned(t *testing.T) {
	s, v, _ := newKeys(t)
	lines := sample(t, s)
	// Drop the final checkpoint: 5 records are chained but unsigned; a torn line follows.
	file := join(lines[:16]) + `{"type":"event","ind`
	rep, err := Verify(strings.NewReader(file), v)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 15 || rep.Checkpoints != 1 || rep.Unsigned() != 5 || rep.TornLine != 17 {
		t.Fatalf("report %+v", rep)
	}
	if rep, err := Verify(strings.NewReader(""), v); err != nil || rep.Records != 0 {
		t.Fatalf("empty: %+v %v", rep, err)
	}
}

// counting wraps the file to count syncs, and to fail on demand.
type counting struct {
	File
	syncs     atomic.Int64
	failWrite atomic.Bool
	failSync  atomic.Bool
	gate      chan struct{} // if non-nil, the first Sync waits for it
	once      sync.Once
}

func (c *counting) Write(p []byte) (int, error) {
	if c.failWrite.Load() {
		return 0, syscall.ENOSPC
	}
	return c.File.Write(p)
}

func (c *counting) Sync() error {
	if c.gate != nil {
		c.once.Do(func() { <-c.gate })
	}
	c.syncs.Add(1)
	if c.failSync.Load() {
		return syscall.EIO
	}
	return c.File.Sync()
}

func TestGroupCommit(t *testing.T) {
	s, v, _ := newKeys(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	c := &counting{gate: make(chan struct{})}
	l, err := Open(path, s, Options{Logger: quiet, WrapFile: func(f File) File { c.File = f; return c }})
	if err != nil {
		t.Fatal(err)
	}
	const G, N = 50, 20
	var wg sync.WaitGroup
	var started atomic.Int64
	errs := make(chan error, G*N)
	for g := range G {
		wg.Go(func() {
			for i := range N {
				started.Add(1)
				ev := event(i)
				ev.Session = fmt.Sprintf("g%d-%d", g, i)
				if err := l.Append(context.Background(), ev); err != nil {
					errs <- err
				}
			}
		})
	}
	// Hold the first sync until every goroutine has an append in flight:
	// they queue behind it and share the next one.
	for started.Load() < G {
		time.Sleep(time.Millisecond)
	}
	close(c.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	syncs := c.syncs.Load()
	t.Logf("%d events, %d syncs", G*N, syncs)
	if syncs >= G*N {
		t.Fatalf("%d syncs for %d events: no group commit", syncs, G*N)
	}
	f, _ := os.Open(path)
	defer f.Close()
	rep, err := Verify(f, v)
	if err != nil || rep.Records != G*N || rep.Unsigned() != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	seen := sessions(t, path)
	for g := range G {
		for i := range N {
			if !seen[fmt.Sprintf("g%d-%d", g, i)] {
				t.Fatalf("event g%d-%d missing", g, i)
			}
		}
	}
}

func sessions(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for line := range strings.SplitSeq(string(b), "\n") {
		var r struct {
			Event *Event `json:"event"`
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.Event != nil {
			seen[r.Event.Session] = true
		}
	}
	return seen
}

func TestRecoverTornTail(t *testing.T) {
	s, v, _ := newKeys(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, s, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := l.Append(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"type":"event","index":5,"prev":"ab`)
	f.Close()

	var logs bytes.Buffer
	l, err = Open(path, s, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "incomplete last line") {
		t.Fatalf("no warning: %q", logs.String())
	}
	if err := l.Append(context.Background(), event(5)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	f, _ = os.Open(path)
	defer f.Close()
	rep, err := Verify(f, v)
	if err != nil || rep.Records != 6 || rep.Checkpoints != 2 || rep.TornLine != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func TestOpenRefusesTampered(t *testing.T) {
	s, _, _ := newKeys(t)
	lines := sample(t, s)
	lines[3] = strings.Replace(lines[3], `"alice"`, `"mallory"`, 1)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	os.WriteFile(path, []byte(join(lines)), 0o600)
	_, err := Open(path, s, Options{Logger: quiet})
	var p *Problem
	if !errors.As(err, &p) || p.Kind != Modified || p.Line != 4 {
		t.Fatalf("Open tampered = %v", err)
	}
	// A file signed with another key is refused too.
	other, _, _ := newKeys(t)
	os.WriteFile(path, []byte(join(sample(t, s))), 0o600)
	if _, err := Open(path, other, Options{Logger: quiet}); !errors.As(err, &p) || p.Kind != BadSignature {
		t.Fatalf("Open with another key = %v", err)
	}
}

func TestUnwritable(t *testing.T) {
	s, _, _ := newKeys(t)
	dir := t.TempDir()
	if _, err := Open(dir, s, Options{Logger: quiet}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Open on a directory = %v", err)
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o500)
		_, err := Open(filepath.Join(ro, "audit.jsonl"), s, Options{Logger: quiet})
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("Open in a read-only directory = %v", err)
		}
	}

	for _, mode := range []string{"write", "sync"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			c := &counting{}
			l, err := Open(path, s, Options{Logger: quiet, WrapFile: func(f File) File { c.File = f; return c }})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Append(context.Background(), event(0)); err != nil {
				t.Fatal(err)
			}
			c.failWrite.Store(mode == "write")
			c.failSync.Store(mode == "sync")
			err = l.Append(context.Background(), event(1))
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Append with a failing %s = %v", mode, err)
			}
			t.Log(err)
			c.failWrite.Store(false)
			c.failSync.Store(false)
			if err := l.Append(context.Background(), event(2)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Append after a failure = %v; the log must stay failed", err)
			}
			l.Close()
			if err := l.Append(context.Background(), event(3)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Append after Close = %v", err)
			}
			// Reopening recovers (the record may or may not have reached the file).
			l, err = Open(path, s, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Append(context.Background(), event(4)); err != nil {
				t.Fatal(err)
			}
			l.Close()
		})
	}
}

func TestAppendRejectsBadEvent(t *testing.T) {
	s, _, _ := newKeys(t)
	l, err := Open(filepath.Join(t.TempDir(), "a"), s, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ev := event(0)
	ev.Decision = "maybe"
	if err := l.Append(context.Background(), ev); err == nil {
		t.Fatal("accepted decision maybe")
	}
}

const childEnv = "MCPGATE_AUDIT_KILL_CHILD"

// TestKill9 runs a child that appends events as fast as it can and prints
// each acknowledged one, kills it with SIGKILL, and checks that every
// acknowledged event is in the file and that the file verifies and reopens.
func TestKill9(t *testing.T) {
	if spec := os.Getenv(childEnv); spec != "" {
		killChild(spec)
		return
	}
	if testing.Short() {
		t.Skip("short")
	}
	s, v, skey := newKeys(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), childEnv+"="+path+"\n"+skey)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[id] = true
		}
		if len(acked) == 500 {
			cmd.Process.Kill() // SIGKILL
		}
	}
	cmd.Wait()
	if len(acked) < 500 {
		t.Fatalf("child acknowledged only %d events", len(acked))
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(f, v)
	f.Close()
	if err != nil {
		t.Fatalf("verify after kill -9: %+v %v", rep, err)
	}
	t.Logf("acknowledged %d, on file %d records (%d checkpoints, torn line %d)", len(acked), rep.Records, rep.Checkpoints, rep.TornLine)
	seen := sessions(t, path)
	for id := range acked {
		if !seen[id] {
			t.Fatalf("acknowledged event %s is not in the file", id)
		}
	}
	l, err := Open(path, s, Options{Logger: quiet})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func killChild(spec string) {
	path, skey, _ := strings.Cut(spec, "\n")
	s, err := note.NewSigner(skey)
	if err != nil {
		panic(err)
	}
	l, err := Open(path, s, Options{CheckpointInterval: 5 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				ev := event(i)
				ev.Session = fmt.Sprintf("g%d-%d", g, i)
				if err := l.Append(context.Background(), ev); err != nil {
					panic(err)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %s\n", ev.Session)
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	select {} // until killed
}

func FuzzVerify(f *testing.F) {
	s, v, _ := newKeys(f)
	lines := sample(f, s)
	f.Add([]byte(join(lines)))
	f.Add([]byte(join(lines[:12])))
	f.Add([]byte(join(append(append([]string(nil), lines[:5]...), lines[6:]...))))
	f.Add([]byte(`{"type":"checkpoint","note":"x\n1\n\n— a b\n"}` + "\n"))
	f.Add([]byte(`{"type":"event","index":0,"prev":"` + zeroPrev + `","event":{}}` + "\n"))
	// A file that continues a rotated one: its continuation header first.
	path := rotating(f, s, f.TempDir(), 12, Options{})
	files, _, _, err := Sequence(path)
	if err != nil || len(files) < 2 {
		f.Fatalf("rotated files %v %v", files, err)
	}
	cont := readAll(f, files[1])
	f.Add(cont)
	f.Add(bytes.Replace(cont, []byte("mcpgate-audit-continuation 1"), []byte("mcpgate-audit-continuation 01"), 1))
	f.Add([]byte(`{"type":"continuation","note":"o\nmcpgate-audit-continuation 1\np\n1\n` + zeroPrev + `\n2026-01-01T00:00:00Z\nAAAA\n\n— a b\n"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Verify(bytes.NewReader(data), v)
		if rep == nil || (err == nil) != (rep.Problem == nil) {
			t.Fatalf("Verify = %+v, %v", rep, err)
		}
		if rep.VerifiedSize > rep.Records || rep.Start > rep.Records {
			t.Fatalf("verified %d of %d records", rep.VerifiedSize, rep.Records)
		}
	})
}

// TestOneWriter: a log is locked while open: a second writer (another
// mcpgate on the same audit.path) is refused rather than allowed to fork
// the chain; after Close the log opens again and still verifies.
func TestOneWriter(t *testing.T) {
	s, v, _ := newKeys(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	first, err := Open(path, s, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Append(context.Background(), event(0)); err != nil {
		t.Fatal(err)
	}
	if second, err := Open(path, s, Options{Logger: quiet}); err == nil || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "in use by another mcpgate") {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second writer: %v, want refused as in use", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(path, s, Options{Logger: quiet})
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	if err := again.Append(context.Background(), event(1)); err != nil {
		t.Fatal(err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if _, err := Verify(bytes.NewReader(b), v); err != nil {
		t.Errorf("log after two writers in turn: %v", err)
	}
}
