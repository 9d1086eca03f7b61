package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// rotatedTime is the timestamp in a rotated file's name: UTC, fixed width,
// so names sort in time order.
const rotatedTime = "20060102T150405Z"

// rotatedName is the name a file at path takes when it is rotated: path,
// the UTC time, and its sequence number (the first file is 0).
func rotatedName(path string, at time.Time, seq int64) string {
	return fmt.Sprintf("%s.%s.%d", path, at.UTC().Format(rotatedTime), seq)
}

// rotatedFile is one rotated file found beside a log.
type rotatedFile struct {
	path string
	seq  int64
}

// rotatedFiles lists the rotated files of the log at path (named as
// rotatedName names them), by sequence number.
func rotatedFiles(path string) ([]rotatedFile, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `\.(\d{8}T\d{6}Z)\.(\d+)$`)
	var out []rotatedFile
	for _, e := range entries {
		m := re.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		seq, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, rotatedFile{path: filepath.Join(dir, e.Name()), seq: seq})
	}
	slices.SortFunc(out, func(a, b rotatedFile) int {
		if a.seq != b.seq {
			return int(min(max(a.seq-b.seq, -1), 1))
		}
		return strings.Compare(a.path, b.path)
	})
	return out, nil
}

// header reads the continuation header on the first line of the file at
// path, without checking its signature; nil if the file has none.
func header(path string) (*continuation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadBytes('\n')
	if err != nil {
		return nil, nil // empty, or one torn line: no header
	}
	var in checkpointOut
	if json.Unmarshal(line, &in) != nil || in.Type != typeContinuation {
		return nil, nil
	}
	// The note's text is everything before the signature block.
	text, _, ok := strings.Cut(in.Note, "\n\n")
	if !ok {
		return nil, fmt.Errorf("%s: malformed continuation header", path)
	}
	c, err := parseContinuation(text + "\n")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Sequence is the files that make up the log whose newest file is path,
// oldest first, found by following each file's continuation header back to
// the file it names (in the same directory). It stops at a file without a
// header, or at one whose predecessor is absent (missing names it: a
// retention policy may have removed old files; VerifyFiles then trusts that
// file's header and says so). Stray is the rotated files beside path that
// the sequence does not reach: if one is older than the sequence's first
// file, a file between them was removed.
func Sequence(path string) (files []string, missing string, stray []string, err error) {
	seen := map[string]bool{}
	for p := path; ; {
		if seen[p] {
			return nil, "", nil, fmt.Errorf("read audit log sequence: %s: continuation headers form a loop", p)
		}
		seen[p] = true
		files = append(files, p)
		c, err := header(p)
		if err != nil {
			return nil, "", nil, fmt.Errorf("read audit log sequence: %w", err)
		}
		if c == nil {
			break
		}
		pred := filepath.Join(filepath.Dir(p), c.predecessor)
		if _, err := os.Stat(pred); errors.Is(err, fs.ErrNotExist) {
			missing = pred
			break
		} else if err != nil {
			return nil, "", nil, fmt.Errorf("read audit log sequence: %w", err)
		}
		p = pred
	}
	slices.Reverse(files)
	rotated, err := rotatedFiles(path)
	if err != nil {
		return nil, "", nil, fmt.Errorf("read audit log sequence: %w", err)
	}
	for _, r := range rotated {
		if !seen[r.path] {
			stray = append(stray, r.path)
		}
	}
	return files, missing, stray, nil
}

// VerifyOptions tune VerifyFiles.
type VerifyOptions struct {
	// Checkpoint is a signed checkpoint note kept apart from the log (what
	// audit.checkpoint_copy writes). The log must hold a tree of at least
	// its size whose root at that size is the checkpoint's: a log cut short
	// together with its last checkpoints fails with Truncated.
	Checkpoint []byte
}

// VerifyFiles verifies a log kept in several files, oldest first (as
// Sequence lists them): each file as Verify does, and across files that
// every continuation header names the file before it and states exactly the
// chain hash and tree that file ended with, so that the chain and the tree
// continue across rotations. A problem names its file and line. If the
// first file begins with a continuation header, its signed statement of the
// tree is trusted as the starting point (Report.TrustedHeader).
func VerifyFiles(files []string, verifier note.Verifier, opts VerifyOptions) (*Report, error) {
	s := newScanner(note.VerifierList(verifier))
	if len(opts.Checkpoint) > 0 {
		nt, err := note.Open(opts.Checkpoint, s.verifiers)
		if err != nil {
			return &s.report, fmt.Errorf("verify checkpoint: its signature does not verify with the key: %w", err)
		}
		origin, size, root, err := parseCheckpoint(nt.Text)
		if err != nil {
			return &s.report, fmt.Errorf("verify checkpoint: %w", err)
		}
		s.origin = origin
		s.want = &external{size: size, root: root}
	}
	for i, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return &s.report, fmt.Errorf("verify audit log: %w", err)
		}
		lines, torn, err := readLines(f)
		f.Close()
		if err != nil {
			return &s.report, fmt.Errorf("verify audit log: read %s: %w", name, err)
		}
		if torn != nil && i < len(files)-1 {
			// Only the live file can end in a write cut short.
			s.name = name
			s.fail(Malformed, len(lines)+1, -1, "incomplete last line in a rotated file")
			return &s.report, s.report.Problem
		}
		s.file(lines, name)
		if torn != nil {
			s.report.TornLine = len(lines) + 1
		}
		if s.report.Problem != nil {
			break
		}
	}
	s.report.Files = s.files
	s.finish()
	if s.report.Problem != nil {
		return &s.report, s.report.Problem
	}
	if s.extNote != "" {
		return &s.report, errors.New("verify checkpoint: " + s.extNote)
	}
	return &s.report, nil
}
