package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrUnavailable is wrapped by every error that means the log could not
// record an event: the caller must refuse the call it was auditing.
var ErrUnavailable = errors.New("audit log unavailable")

// ErrClosed is returned by Append and Submit after Close.
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
	// arrive; 0 means only on Checkpoint, rotation and Close.
	CheckpointInterval time.Duration
	// MaxBatch caps the records written under one fsync. Default 1024.
	MaxBatch int
	// SubmitSyncDelay bounds how long a submitted record (Submit) may stay
	// written but not yet fsynced. A group commit that holds only
	// submitted records, which no caller waits for, is written at once but
	// its fsync is deferred: it is done by the next fsync the log does
	// anyway (an Append's or a Checkpoint's group commit, a checkpoint,
	// a rotation, Close), or when this delay has passed since the first
	// such write, whichever comes first. Default 100ms; a negative value
	// fsyncs every group commit, as if every record were waited for.
	SubmitSyncDelay time.Duration
	// SubmitQueue is how many submitted records may wait for the writer
	// before Submit blocks (back-pressure, bounded memory). Default 4096.
	SubmitQueue int
	// RotateBytes rotates the file once it reaches this size; 0: never.
	RotateBytes int64
	// RotateAge rotates the file once its first record is this old; 0: never.
	RotateAge time.Duration
	// CheckpointCopy, if set, is a file that every checkpoint is also
	// written to (atomically: temp file, fsync, rename, fsync of the
	// directory), to keep on another disk or ship away: the one defence
	// against a log cut short together with its last checkpoints.
	CheckpointCopy string
	// OnLost is told of submitted records (Submit) that a failed write or
	// sync lost after Submit had returned. Default: nothing (the failure
	// itself is logged).
	OnLost func(n int, err error)
	// Logger receives warnings (a torn last line dropped at Open, a failure).
	// Default: slog.Default().
	Logger *slog.Logger
	// WrapFile, if set, wraps every opened file; tests use it to count or
	// fail writes and syncs.
	WrapFile func(File) File
	// Now is the clock for events without a time, and for rotation.
	// Default time.Now.
	Now func() time.Time
}

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	path   string
	signer note.Signer
	opts   Options
	origin string

	reqs chan request
	subs chan *Event   // Submit's queue
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the writer goroutine ends

	// closeMu orders Submit against Close: a Submit that returned nil has
	// queued its record before Close sets closing, so the writer's final
	// drain sees it.
	closeMu   sync.RWMutex
	closing   bool
	closeOnce sync.Once
	closeErr  error

	// failure mirrors failed for readers outside the writer goroutine.
	failure atomic.Pointer[error]

	// Owned by the writer goroutine after Open.
	osFile      *os.File
	file        File
	size        int64     // bytes in the current file
	fileRecords int64     // records in the current file
	created     time.Time // when the current file began (for RotateAge)
	seq         int64     // the current file's sequence number
	predecessor string    // at Open: the rotated file an empty log file must continue
	t           tree
	signedN     int64 // tree size of the last checkpoint written
	lastNote    []byte
	copyDue     bool  // lastNote is not yet in CheckpointCopy
	failed      error // sticky
	buf         bytes.Buffer
	pendings    []request
	// dirty: bytes were written to the file since its last fsync;
	// unsynced counts the submitted records among them, which a failure
	// before that fsync loses (reported to OnLost). syncTimer, armed
	// (syncArmed) when the first of them was written without an fsync,
	// bounds their wait by SubmitSyncDelay.
	dirty     bool
	unsynced  int
	syncTimer *time.Timer
	syncArmed bool
}

type request struct {
	ev         *Event // nil for a checkpoint request
	checkpoint bool
	reply      chan error // buffered 1; nil for a submitted record
}

// NewCallID is a fresh random call id (128 bits, hex) for Event.Call.
func NewCallID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return short)
	return hex.EncodeToString(b[:])
}

// Open opens or creates the log file at path (mode 0600), recovers its state
// by reading and checking every line, and starts the writer. A last line cut
// short by a crash is truncated away with a warning; any other problem (a
// modified, missing or reordered record, a checkpoint not signed by signer)
// refuses to open, naming the line. A new or empty file beside rotated ones
// continues the newest of them (a crash between a rotation's rename and the
// new file's header leaves that state).
func Open(path string, signer note.Signer, opts Options) (*Log, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.SubmitQueue <= 0 {
		opts.SubmitQueue = 4096
	}
	if opts.SubmitSyncDelay == 0 {
		opts.SubmitSyncDelay = 100 * time.Millisecond
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
	f, err := openLocked(path)
	if err != nil {
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
	l.setFile(f)
	if l.predecessor != "" {
		// A new file after rotated ones: bind it to the newest before
		// anything else is written to it.
		if err := l.writeHeader(l.predecessor); err != nil {
			l.osFile.Close()
			return nil, err
		}
	}
	l.reqs = make(chan request)
	l.subs = make(chan *Event, opts.SubmitQueue)
	l.quit = make(chan struct{})
	l.done = make(chan struct{})
	go l.writer()
	return l, nil
}

func openLocked(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrUnavailable, path, err)
	}
	if err := lockFile(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (l *Log) setFile(f *os.File) {
	l.osFile, l.file = f, f
	if l.opts.WrapFile != nil {
		l.file = l.opts.WrapFile(f)
	}
}

func (l *Log) recover() error {
	if _, err := l.osFile.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%w: read %s: %v", ErrUnavailable, l.path, err)
	}
	lines, torn, err := readLines(l.osFile)
	if err != nil {
		return fmt.Errorf("%w: read %s: %v", ErrUnavailable, l.path, err)
	}
	var size int64
	for _, line := range lines {
		size += int64(len(line)) + 1
	}
	if torn != nil {
		l.opts.Logger.Warn("audit log: dropping an incomplete last line (a write cut short by a crash)",
			"path", l.path, "line", len(lines)+1, "bytes", len(torn))
		if err := l.osFile.Truncate(size); err != nil {
			return fmt.Errorf("%w: truncate torn line of %s: %v", ErrUnavailable, l.path, err)
		}
		if err := l.osFile.Sync(); err != nil {
			return fmt.Errorf("%w: sync %s: %v", ErrUnavailable, l.path, err)
		}
	}
	verifiers := note.VerifierList(resignVerifier{l.signer})
	if len(lines) == 0 {
		return l.recoverPredecessor(verifiers)
	}
	s := newScanner(verifiers)
	s.file(lines, "")
	if p := s.report.Problem; p != nil {
		return fmt.Errorf("audit log %s does not verify, refusing to append to it: %w", l.path, p)
	}
	l.t = s.t
	l.signedN = s.report.VerifiedSize
	l.size, l.fileRecords = size, s.t.n-s.base
	l.created, l.seq = s.created, s.seq
	if s.origin != "" {
		l.origin = s.origin
	}
	return nil
}

// recoverPredecessor takes the tree state from the newest rotated file
// beside an empty log file, if there is one.
func (l *Log) recoverPredecessor(verifiers note.Verifiers) error {
	rotated, err := rotatedFiles(l.path)
	if err != nil {
		return fmt.Errorf("%w: list rotated files of %s: %v", ErrUnavailable, l.path, err)
	}
	if len(rotated) == 0 {
		return nil
	}
	newest := rotated[len(rotated)-1]
	b, err := os.ReadFile(newest.path)
	if err != nil {
		return fmt.Errorf("%w: read %s: %v", ErrUnavailable, newest.path, err)
	}
	lines, _, _ := readLines(bytes.NewReader(b))
	s := newScanner(verifiers)
	s.file(lines, newest.path)
	if p := s.report.Problem; p != nil {
		return fmt.Errorf("audit log %s does not verify, refusing to continue it: %w", newest.path, p)
	}
	l.opts.Logger.Warn("audit log: continuing the newest rotated file (a rotation was cut short, or the log file was removed)",
		"path", l.path, "predecessor", newest.path, "records", s.t.n)
	l.t = s.t
	l.signedN = s.report.VerifiedSize
	l.seq = newest.seq
	l.predecessor = filepath.Base(newest.path)
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
	if err := l.prepare(&ev); err != nil {
		return err
	}
	return l.do(ctx, request{ev: &ev, reply: make(chan error, 1)})
}

// Submit queues ev for the next group commit and returns without waiting
// for it to reach stable storage: for a record of what already happened
// (a call's result), whose write must not delay the response. The record
// is written with the next group commit and fsynced with the next one
// that someone waits for, or at most Options.SubmitSyncDelay after its
// write (at a checkpoint, a rotation and Close too). It blocks
// only while SubmitQueue records are already waiting. It fails at once,
// wrapping ErrUnavailable, once the log has failed, and with ErrClosed
// after Close; a failure after it returned is logged and reported to
// Options.OnLost. Close writes every record submitted before it.
func (l *Log) Submit(ev Event) error {
	if err := l.prepare(&ev); err != nil {
		return err
	}
	if p := l.failure.Load(); p != nil {
		return *p
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closing {
		return ErrClosed
	}
	l.subs <- &ev // the writer runs until Close, which waits for this lock
	return nil
}

func (l *Log) prepare(ev *Event) error {
	if err := ev.validate(); err != nil {
		return err
	}
	if ev.Time.IsZero() {
		ev.Time = l.opts.Now()
	}
	ev.Time = ev.Time.UTC()
	return nil
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

// Close writes and fsyncs every submitted record and a final checkpoint,
// stops the writer and closes the file.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.closeMu.Lock()
		l.closing = true
		l.closeMu.Unlock()
		close(l.quit)
		<-l.done
	})
	return l.closeErr
}

// writer is the one goroutine that writes the file: it takes every request
// waiting, writes them at once, syncs once and answers them all (a batch of
// submitted records alone is synced later, see Options.SubmitSyncDelay).
func (l *Log) writer() {
	defer close(l.done)
	defer func() {
		if l.syncTimer != nil {
			l.syncTimer.Stop()
		}
	}()
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
		case ev := <-l.subs:
			l.batch(request{ev: ev})
		case <-l.syncDue():
			// Submitted records written SubmitSyncDelay ago are not
			// synced yet: nothing else synced since.
			l.syncArmed = false
			if l.failed == nil {
				l.sync()
			}
		case <-tick:
			if l.failed == nil && l.t.n > l.signedN {
				l.buf.Reset()
				l.flush(l.addCheckpoint())
			}
			if l.failed == nil && (l.dueSize() || l.dueAge()) {
				l.rotate()
			}
		case <-l.quit:
			// No Submit can add to subs any more (closing is set): what
			// is queued is all there will be.
			for len(l.subs) > 0 {
				l.batch(request{ev: <-l.subs})
			}
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
		case ev := <-l.subs:
			l.pendings = append(l.pendings, request{ev: ev})
		default:
			break more
		}
	}
	// Someone waits for this batch (an Append, a Checkpoint): it is synced
	// now. Otherwise (submitted records only) its sync may wait.
	wait := l.opts.SubmitSyncDelay < 0
	for _, r := range l.pendings {
		if r.reply != nil {
			wait = true
			break
		}
	}
	err := l.failed
	if err == nil && l.dueAge() {
		// A file past its age takes no more records.
		err = l.rotate()
	}
	if err == nil {
		l.buf.Reset()
		for _, r := range l.pendings {
			if err = l.add(r); err != nil {
				break
			}
		}
		switch {
		case err != nil:
		case wait:
			err = l.flush(nil)
		default:
			if err = l.write(); err == nil {
				l.unsynced += len(l.pendings)
				l.armSync()
			}
		}
	}
	lost := 0
	for _, r := range l.pendings {
		if r.reply != nil {
			r.reply <- err
		} else if err != nil {
			lost++
		}
	}
	clear(l.pendings)
	if lost > 0 && l.opts.OnLost != nil {
		l.opts.OnLost(lost, err)
	}
	if err == nil && l.dueSize() {
		l.rotate() // after the answers: the callers do not wait for it
	}
}

// dueSize reports whether the current file holds records and has reached
// RotateBytes; dueAge, whether its first record is RotateAge old. Size is
// checked after a batch, age before one (and both at the checkpoint tick):
// a file is never rotated for being old just after its last write.
func (l *Log) dueSize() bool {
	return l.fileRecords > 0 && l.opts.RotateBytes > 0 && l.size >= l.opts.RotateBytes
}

func (l *Log) dueAge() bool {
	return l.fileRecords > 0 && l.opts.RotateAge > 0 && !l.created.IsZero() && l.opts.Now().Sub(l.created) >= l.opts.RotateAge
}

// add encodes r into l.buf and updates the tree.
func (l *Log) add(r request) error {
	if r.checkpoint {
		return l.addCheckpoint()
	}
	// Encoded straight into the batch's buffer (see AvailableBuffer).
	line, err := appendRecord(l.buf.AvailableBuffer(), recordOut{Type: typeEvent, Index: l.t.n, Prev: l.t.prev(), Event: r.ev})
	if err != nil {
		return l.fail(fmt.Errorf("encode record: %v", err))
	}
	if l.fileRecords == 0 {
		l.created = l.opts.Now()
	}
	l.t.add(tlog.RecordHash(line))
	l.fileRecords++
	l.buf.Write(line)
	l.buf.WriteByte('\n')
	return nil
}

func (l *Log) addCheckpoint() error {
	if l.t.n == l.signedN {
		return nil
	}
	msg, err := note.Sign(&note.Note{Text: formatCheckpoint(l.origin, l.t.n, l.t.root())}, l.signer)
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
	l.lastNote, l.copyDue = msg, l.opts.CheckpointCopy != ""
	return nil
}

// flush writes l.buf and syncs the file (with every earlier write not yet
// synced); prior is an error from filling it. Then the checkpoint copy, if
// one is due.
func (l *Log) flush(prior error) error {
	if prior != nil {
		return prior
	}
	if err := l.write(); err != nil {
		return err
	}
	if err := l.sync(); err != nil {
		return err
	}
	if l.copyDue {
		l.copyDue = false
		if err := writeAtomic(l.opts.CheckpointCopy, l.lastNote); err != nil {
			// The log itself holds: calls go on; the operator is told.
			l.opts.Logger.Error("audit checkpoint copy not written", "path", l.opts.CheckpointCopy, "err", err)
		}
	}
	return nil
}

// write writes l.buf to the file without syncing it.
func (l *Log) write() error {
	if l.buf.Len() == 0 {
		return nil
	}
	if _, err := l.file.Write(l.buf.Bytes()); err != nil {
		return l.fail(fmt.Errorf("write %s: %v", l.path, err))
	}
	l.size += int64(l.buf.Len())
	l.dirty = true
	return nil
}

// sync fsyncs the file if anything was written since its last fsync, and
// disarms the deferred sync.
func (l *Log) sync() error {
	if !l.dirty {
		return nil
	}
	if err := l.file.Sync(); err != nil {
		return l.fail(fmt.Errorf("sync %s: %v", l.path, err))
	}
	l.dirty, l.unsynced = false, 0
	if l.syncArmed {
		l.syncTimer.Stop() // no stale tick after Stop (Go 1.23 timers)
		l.syncArmed = false
	}
	return nil
}

// armSync starts the SubmitSyncDelay timer, unless it runs already: the
// first unsynced record bounds the wait.
func (l *Log) armSync() {
	if l.syncArmed {
		return
	}
	if l.syncTimer == nil {
		l.syncTimer = time.NewTimer(l.opts.SubmitSyncDelay)
	} else {
		l.syncTimer.Reset(l.opts.SubmitSyncDelay)
	}
	l.syncArmed = true
}

// syncDue is the deferred sync's channel while it is armed, else nil.
func (l *Log) syncDue() <-chan time.Time {
	if !l.syncArmed {
		return nil
	}
	return l.syncTimer.C
}

// writeAtomic replaces path with data: a reader sees the old or the new
// content, never a mix, and after a crash the new one once it returned.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// fail makes the log fail for good (until reopened): after a failed write
// the file's tail and the tree in memory no longer agree.
// Submitted records written but not yet synced are lost with it: OnLost
// hears of them.
func (l *Log) fail(err error) error {
	l.failed = fmt.Errorf("%w: %v (reopen the log to recover)", ErrUnavailable, err)
	l.opts.Logger.Error("audit log failed; calls are refused until it is reopened", "path", l.path, "err", err)
	if n := l.unsynced; n > 0 {
		l.unsynced = 0
		if l.opts.OnLost != nil {
			l.opts.OnLost(n, l.failed)
		}
	}
	// Published last, so that whoever sees the failure (Err, Submit) also
	// sees the loss counted.
	failed := l.failed
	l.failure.Store(&failed)
	return l.failed
}

func (l *Log) finish() error {
	var err error
	if l.failed == nil {
		// The final checkpoint (if records came since the last), and the
		// sync of every record written.
		l.buf.Reset()
		err = l.flush(l.addCheckpoint())
	}
	if cerr := l.osFile.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%w: close %s: %v", ErrUnavailable, l.path, cerr)
	}
	return err
}
