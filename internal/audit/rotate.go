package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
)

// rotate closes the current file with a checkpoint, renames it to its
// rotated name and starts a new file at the log's path whose first line, a
// signed continuation header, binds it to the renamed one and carries the
// tree on. Any failure fails the log: a crash or error between the rename
// and the header leaves an empty or missing file that Open continues from
// the newest rotated file.
func (l *Log) rotate() error {
	l.buf.Reset()
	if err := l.flush(l.addCheckpoint()); err != nil {
		return err
	}
	rotated := rotatedName(l.path, l.opts.Now(), l.seq)
	if _, err := os.Lstat(rotated); err == nil {
		return l.fail(fmt.Errorf("rotate %s: %s already exists", l.path, rotated))
	}
	if err := os.Rename(l.path, rotated); err != nil {
		return l.fail(fmt.Errorf("rotate %s: %v", l.path, err))
	}
	old := l.osFile
	// The old file stays open, and locked, until the new one is.
	defer old.Close()
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return l.fail(fmt.Errorf("rotate: create %s: %v", l.path, err))
	}
	if err := lockFile(f, l.path); err != nil {
		f.Close()
		return l.fail(fmt.Errorf("rotate: %v", err))
	}
	l.setFile(f)
	l.size, l.fileRecords = 0, 0
	if err := l.writeHeader(filepath.Base(rotated)); err != nil {
		return err
	}
	l.opts.Logger.Info("audit log rotated", "path", l.path, "rotated", rotated, "records", l.t.n)
	return nil
}

// writeHeader writes the continuation header that makes the (empty)
// current file follow predecessor, syncs it and the directory.
func (l *Log) writeHeader(predecessor string) error {
	l.seq++
	c := continuation{
		origin: l.origin, seq: l.seq, predecessor: predecessor, size: l.t.n,
		prev: l.t.last, created: l.opts.Now().UTC(), frontier: l.t.frontier,
	}
	msg, err := note.Sign(&note.Note{Text: c.format()}, l.signer)
	if err != nil {
		return l.fail(fmt.Errorf("sign continuation header: %v", err))
	}
	line, err := json.Marshal(checkpointOut{Type: typeContinuation, Note: string(msg)})
	if err != nil {
		return l.fail(fmt.Errorf("encode continuation header: %v", err))
	}
	line = append(line, '\n')
	if _, err := l.file.Write(line); err != nil {
		return l.fail(fmt.Errorf("write %s: %v", l.path, err))
	}
	if err := l.file.Sync(); err != nil {
		return l.fail(fmt.Errorf("sync %s: %v", l.path, err))
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		return l.fail(err)
	}
	l.size += int64(len(line))
	l.created = c.created
	// The header is a signed statement of the tree: it covers every record
	// so far, as a checkpoint would.
	l.signedN = l.t.n
	return nil
}
