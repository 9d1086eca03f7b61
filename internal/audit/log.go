package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrUnavailable is wrapped by every error that means the log could not
// record an event: the caller must refuse the call it was auditing.
var ErrUnavailable = errors.New("audit log unavailable")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log closed")

// File is what the Log writes to: *os.File, or a wrapper from
// Options.WrapFile.
type File interface {
	io.Writer
	Sync() error
}

// Options tune a Log. The zero value is usable.
type Options struct {
	// Origin is the first line of every checkpoint, naming the log. Default:
	// the signer's name. An existing file keeps the origin it has.
	Origin string
	// CheckpointInterval is how often a checkpoint is written while records
	// arrive; 0 means only on Checkpoint and Close.
	CheckpointInterval time.Duration
	// MaxBatch caps the records written under one fsync. Default 1024.
	MaxBatch int
	// Logger receives warnings (a torn last line dropped at Open, a failure).
	// Default: slog.Default().
	Logger *slog.Logger
	// WrapFile, if set, wraps the opened file; tests use it to count or fail
	// writes and syncs.
	WrapFile func(File) File
	// Now is the clock for events without a time. Default time.Now.
	Now func() time.Time
}

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	path   string
	signer note.Signer
	opts   Options
	origin string
	osFile *os.File
	file   File

	reqs chan request
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the writer goroutine ends

	closeOnce sync.Once
	closeErr  error

	// failure mirrors failed for readers outside the writer goroutine.
	failure atomic.Pointer[error]

	// Owned by the writer goroutine after Open.
	t        tree
	signedN  int64 // tree size of the last checkpoint written
	failed   error // sticky
	buf      bytes.Buffer
	pendings []request
}

type request struct {
	ev         *Event // nil for a checkpoint request
	checkpoint bool
	reply      chan error // buffered 1
}

// Open opens or creates the log file at path (mode 0600), recovers its state
// by reading and checking every line, and starts the writer. A last line cut
// short by a crash is truncated away with a warning; any other problem (a
// modified, missing or reordered record, a checkpoint not signed by signer)
// refuses to open, naming the line.
func Open(path string, signer note.Signer, opts Options) (*Log, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Origin == "" {
		opts.Origin = signer.Name()
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrUnavailable, path, err)
	}
	if err := lockFile(f, path); err != nil {
		f.Close()
		return nil, err
	}
	l := &Log{path: path, signer: signer, opts: opts, osFile: f, origin: opts.Origin}
	if err := l.recover(); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: seek %s: %v", ErrUnavailable, path, err)
	}
	l.file = f
	if opts.WrapFile != nil {
		l.file = opts.WrapFile(f)
	}
	l.reqs = make(chan request)
	l.quit = make(chan struct{})
	l.done = make(chan struct{})
	go l.writer()
	return l, nil
}

func (l *Log) recover() error {
	if _, err := l.osFile.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%w: read %s: %v", ErrUnavailable, l.path, err)
	}
	lines, torn, err := readLines(l.osFile)
	if err != nil {
		return fmt.Errorf("%w: read %s: %v", ErrUnavailable, l.path, err)
	}
	s := newScanner(note.VerifierList(resignVerifier{l.signer}))
	s.scan(lines)
	if p := s.report.Problem; p != nil {
		return fmt.Errorf("audit log %s does not verify, refusing to append to it: %w", l.path, p)
	}
	if torn != nil {
		var size int64
		for _, line := range lines {
			size += int64(len(line)) + 1
		}
		l.opts.Logger.Warn("audit log: dropping an incomplete last line (a write cut short by a crash)",
			"path", l.path, "line", len(lines)+1, "bytes", len(torn))
		if err := l.osFile.Truncate(size); err != nil {
			return fmt.Errorf("%w: truncate torn line of %s: %v", ErrUnavailable, l.path, err)
		}
		if err := l.osFile.Sync(); err != nil {
			return fmt.Errorf("%w: sync %s: %v", ErrUnavailable, l.path, err)
		}
	}
	l.t = s.t
	l.signedN = s.report.VerifiedSize
	if s.origin != "" {
		l.origin = s.origin
	}
	return nil
}

// Append records ev and returns once it is on stable storage (written and
// fsynced, sharing the fsync with concurrent appends). An error wrapping
// ErrUnavailable means it is not: the caller must refuse the call. If ctx
// ends first, Append returns ctx's error and the event may or may not be
// recorded. A zero ev.Time is set to now; times are stored in UTC.
func (l *Log) Append(ctx context.Context, ev Event) error {
	if err := ev.validate(); err != nil {
		return err
	}
	if ev.Time.IsZero() {
		ev.Time = l.opts.Now()
	}
	ev.Time = ev.Time.UTC()
	return l.do(ctx, request{ev: &ev, reply: make(chan error, 1)})
}

// Checkpoint writes a signed checkpoint of the records so far (if any were
// appended since the last one) and syncs it.
func (l *Log) Checkpoint() error {
	return l.do(context.Background(), request{checkpoint: true, reply: make(chan error, 1)})
}

func (l *Log) do(ctx context.Context, r request) error {
	select {
	case l.reqs <- r:
	case <-l.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Err reports whether the log can take records: nil while it can, the
// sticky error (wrapping ErrUnavailable) once a write failed, or ErrClosed
// after Close. It does not wait for the writer.
func (l *Log) Err() error {
	if p := l.failure.Load(); p != nil {
		return *p
	}
	select {
	case <-l.quit:
		return ErrClosed
	default:
		return nil
	}
}

// Close writes a final checkpoint, stops the writer and closes the file.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.quit)
		<-l.done
	})
	return l.closeErr
}

// writer is the one goroutine that writes the file: it takes every request
// waiting, writes them at once, syncs once and answers them all.
func (l *Log) writer() {
	defer close(l.done)
	var tick <-chan time.Time
	if l.opts.CheckpointInterval > 0 {
		tk := time.NewTicker(l.opts.CheckpointInterval)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case r := <-l.reqs:
			l.batch(r)
		case <-tick:
			if l.failed == nil && l.t.n > l.signedN {
				l.buf.Reset()
				l.flush(l.addCheckpoint())
			}
		case <-l.quit:
			l.closeErr = l.finish()
			return
		}
	}
}

func (l *Log) batch(first request) {
	l.pendings = append(l.pendings[:0], first)
more:
	for len(l.pendings) < l.opts.MaxBatch {
		select {
		case r := <-l.reqs:
			l.pendings = append(l.pendings, r)
		default:
			break more
		}
	}
	err := l.failed
	if err == nil {
		l.buf.Reset()
		for _, r := range l.pendings {
			if err = l.add(r); err != nil {
				break
			}
		}
		if err == nil {
			err = l.flush(nil)
		}
	}
	for _, r := range l.pendings {
		r.reply <- err
	}
	clear(l.pendings)
}

// add encodes r into l.buf and updates the tree.
func (l *Log) add(r request) error {
	if r.checkpoint {
		return l.addCheckpoint()
	}
	line, err := json.Marshal(recordOut{Type: typeEvent, Index: l.t.n, Prev: l.t.prevOf(l.t.n), Event: r.ev})
	if err != nil {
		return l.fail(fmt.Errorf("encode record: %v", err))
	}
	if err := l.t.add(tlog.RecordHash(line)); err != nil {
		return l.fail(fmt.Errorf("tree: %v", err))
	}
	l.buf.Write(line)
	l.buf.WriteByte('\n')
	return nil
}

func (l *Log) addCheckpoint() error {
	if l.t.n == l.signedN {
		return nil
	}
	root, err := l.t.root(l.t.n)
	if err != nil {
		return l.fail(fmt.Errorf("tree: %v", err))
	}
	msg, err := note.Sign(&note.Note{Text: formatCheckpoint(l.origin, l.t.n, root)}, l.signer)
	if err != nil {
		return l.fail(fmt.Errorf("sign checkpoint: %v", err))
	}
	line, err := json.Marshal(checkpointOut{Type: typeCheckpoint, Note: string(msg)})
	if err != nil {
		return l.fail(fmt.Errorf("encode checkpoint: %v", err))
	}
	l.buf.Write(line)
	l.buf.WriteByte('\n')
	l.signedN = l.t.n
	return nil
}

// flush writes l.buf and syncs; prior is an error from filling it.
func (l *Log) flush(prior error) error {
	if prior != nil {
		return prior
	}
	if l.buf.Len() == 0 {
		return nil
	}
	if _, err := l.file.Write(l.buf.Bytes()); err != nil {
		return l.fail(fmt.Errorf("write %s: %v", l.path, err))
	}
	if err := l.file.Sync(); err != nil {
		return l.fail(fmt.Errorf("sync %s: %v", l.path, err))
	}
	return nil
}

// fail makes the log fail for good (until reopened): after a failed write
// the file's tail and the tree in memory no longer agree.
func (l *Log) fail(err error) error {
	l.failed = fmt.Errorf("%w: %v (reopen the log to recover)", ErrUnavailable, err)
	failed := l.failed
	l.failure.Store(&failed)
	l.opts.Logger.Error("audit log failed; calls are refused until it is reopened", "path", l.path, "err", err)
	return l.failed
}

func (l *Log) finish() error {
	var err error
	if l.failed == nil && l.t.n > l.signedN {
		l.buf.Reset()
		err = l.flush(l.addCheckpoint())
	}
	if cerr := l.osFile.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%w: close %s: %v", ErrUnavailable, l.path, cerr)
	}
	return err
}
