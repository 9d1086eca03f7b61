package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Kind is the kind of problem Verify found.
type Kind int

// The kinds of problem, each pointing at a line of the file.
const (
	// Malformed: a line that is not a record or checkpoint line.
	Malformed Kind = iota + 1
	// Modified: a record's bytes changed (its hash no longer matches the
	// next record's prev, or a checkpoint's root no longer matches).
	Modified
	// Deleted: records are missing (an index gap, or a checkpoint covering
	// more records than precede it while later records remain).
	Deleted
	// Inserted: a line that is not part of the chain (a repeated index, or
	// records before a checkpoint that it does not cover).
	Inserted
	// Reordered: a record appears before one with a smaller index.
	Reordered
	// BadSignature: a checkpoint whose signature does not verify with the key.
	BadSignature
	// Truncated: the file ends before the records its last checkpoint covers.
	Truncated
)

var kindNames = map[Kind]string{
	Malformed: "malformed", Modified: "modified", Deleted: "deleted", Inserted: "inserted",
	Reordered: "reordered", BadSignature: "bad signature", Truncated: "truncated",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Problem is the first place where a log stops holding.
type Problem struct {
	Kind  Kind
	Line  int    // 1-based line of the file the problem is reported at
	Index int64  // the record index concerned, or -1
	Msg   string // what exactly, for a human
}

func (p *Problem) Error() string {
	return fmt.Sprintf("line %d: %s: %s", p.Line, p.Kind, p.Msg)
}

// Report is the result of checking a log file.
type Report struct {
	Records      int64 // records read (up to the problem, if any)
	Checkpoints  int   // checkpoints whose signature and root verified
	VerifiedSize int64 // tree size of the last verified checkpoint
	// TornLine is the 1-based line number of an incomplete last line (no
	// newline: a write cut short by a crash), which is ignored; 0 if none.
	TornLine int
	Problem  *Problem // nil if the log holds
}

// Unsigned is the number of records after the last verified checkpoint:
// they are chained but no signature covers them yet.
func (r *Report) Unsigned() int64 { return r.Records - r.VerifiedSize }

// Verify reads a log file and recomputes its hash chain, its Merkle tree and
// every checkpoint's signature and root. The report says how much holds; if
// something does not, Report.Problem names the first problem and Verify
// returns it as the error too. Other errors are read errors.
//
// An incomplete last line (a crash during a write) is not a problem: it was
// never acknowledged. Records after the last checkpoint are chained but not
// signed; Report.Unsigned counts them.
func Verify(r io.Reader, verifier note.Verifier) (*Report, error) {
	lines, torn, err := readLines(r)
	if err != nil {
		return &Report{}, err
	}
	s := newScanner(note.VerifierList(verifier))
	s.scan(lines)
	if torn != nil {
		s.report.TornLine = len(lines) + 1
	}
	if s.report.Problem != nil {
		return &s.report, s.report.Problem
	}
	return &s.report, nil
}

// readLines splits r into lines without their newlines; an unterminated last
// line is returned separately.
func readLines(r io.Reader) (lines [][]byte, torn []byte, err error) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				torn = line
			}
			return lines, torn, nil
		}
		if err != nil {
			return nil, nil, err
		}
		lines = append(lines, line[:len(line)-1])
	}
}

// Line shapes. A record line is written from recordOut so its fields are in
// this order; it is read back as lineIn.
type recordOut struct {
	Type  string `json:"type"`
	Index int64  `json:"index"`
	Prev  string `json:"prev"`
	Event *Event `json:"event"`
}

type checkpointOut struct {
	Type string `json:"type"`
	Note string `json:"note"`
}

type lineIn struct {
	Type  string          `json:"type"`
	Index *int64          `json:"index"`
	Prev  string          `json:"prev"`
	Event json.RawMessage `json:"event"`
	Note  *string         `json:"note"`
}

const (
	typeEvent      = "event"
	typeCheckpoint = "checkpoint"
)

// zeroPrev is the prev of record 0.
var zeroPrev = strings.Repeat("0", 64)

type parsed struct {
	in  lineIn
	err error
}

func parseLine(b []byte) (p parsed) {
	if err := json.Unmarshal(b, &p.in); err != nil {
		p.err = fmt.Errorf("not a JSON object: %v", err)
		return p
	}
	switch p.in.Type {
	case typeEvent:
		switch {
		case p.in.Index == nil || *p.in.Index < 0:
			p.err = errors.New("record without a valid index")
		case !isHex64(p.in.Prev):
			p.err = errors.New("record without a valid prev hash")
		case len(p.in.Event) == 0 || p.in.Event[0] != '{':
			p.err = errors.New("record without an event object")
		case p.in.Note != nil:
			p.err = errors.New("record with a note field")
		}
	case typeCheckpoint:
		if p.in.Note == nil || p.in.Index != nil || p.in.Event != nil || p.in.Prev != "" {
			p.err = errors.New("checkpoint must have only a note")
		}
	default:
		p.err = fmt.Errorf("unknown line type %q", p.in.Type)
	}
	return p
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// tree is the Merkle tree's stored hashes, in memory (2 hashes a record).
type tree struct {
	hashes []tlog.Hash
	n      int64
}

func (t *tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("audit: hash %d not stored", x)
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

func (t *tree) add(leaf tlog.Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(t.n, leaf, t)
	if err != nil {
		return err
	}
	t.hashes = append(t.hashes, hs...)
	t.n++
	return nil
}

func (t *tree) leaf(i int64) tlog.Hash { return t.hashes[tlog.StoredHashIndex(0, i)] }

func (t *tree) root(n int64) (tlog.Hash, error) { return tlog.TreeHash(n, t) }

// prevOf is the prev a record following record n-1 must carry.
func (t *tree) prevOf(n int64) string {
	if n == 0 {
		return zeroPrev
	}
	h := t.leaf(n - 1)
	return hex.EncodeToString(h[:])
}

// formatCheckpoint is the note body: origin, tree size, base64 root hash.
func formatCheckpoint(origin string, n int64, root tlog.Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, n, base64.StdEncoding.EncodeToString(root[:]))
}

func parseCheckpoint(text string) (origin string, n int64, root tlog.Hash, err error) {
	ls := strings.SplitN(text, "\n", 4)
	if len(ls) < 4 || ls[0] == "" {
		return "", 0, root, errors.New("checkpoint body is not origin, size, root")
	}
	n, err = strconv.ParseInt(ls[1], 10, 64)
	if err != nil || n < 0 || ls[1] != strconv.FormatInt(n, 10) {
		return "", 0, root, fmt.Errorf("checkpoint size %q", ls[1])
	}
	h, err := base64.StdEncoding.DecodeString(ls[2])
	if err != nil || len(h) != tlog.HashSize {
		return "", 0, root, fmt.Errorf("checkpoint root %q", ls[2])
	}
	copy(root[:], h)
	return ls[0], n, root, nil
}

// scanner checks lines in order; Open and Verify share it.
type scanner struct {
	verifiers note.Verifiers
	t         tree
	report    Report
	origin    string // of the first checkpoint
	// lineOf[i] is the line of record i as accepted into the tree.
	lineOf []int
}

func newScanner(v note.Verifiers) *scanner { return &scanner{verifiers: v} }

func (s *scanner) fail(kind Kind, line int, index int64, format string, args ...any) {
	s.report.Problem = &Problem{Kind: kind, Line: line, Index: index, Msg: fmt.Sprintf(format, args...)}
}

func (s *scanner) scan(lines [][]byte) {
	ps := make([]parsed, len(lines))
	firstLine := map[int64]int{} // record index -> first line (0-based) it appears on
	for i, l := range lines {
		ps[i] = parseLine(l)
		if ps[i].err == nil && ps[i].in.Type == typeEvent {
			if _, ok := firstLine[*ps[i].in.Index]; !ok {
				firstLine[*ps[i].in.Index] = i
			}
		}
	}
	for i := range lines {
		if ps[i].err != nil {
			s.fail(Malformed, i+1, -1, "%v", ps[i].err)
			return
		}
		var ok bool
		if ps[i].in.Type == typeEvent {
			ok = s.record(lines, ps, firstLine, i)
		} else {
			ok = s.checkpoint(lines, ps, i)
		}
		if !ok {
			return
		}
	}
}

// nextRecord is the next record line after line i (0-based), or -1.
func nextRecord(ps []parsed, i int) int {
	for j := i + 1; j < len(ps); j++ {
		if ps[j].err != nil {
			return -1
		}
		if ps[j].in.Type == typeEvent {
			return j
		}
	}
	return -1
}

func (s *scanner) record(lines [][]byte, ps []parsed, firstLine map[int64]int, i int) bool {
	in := ps[i].in
	idx, n, line := *in.Index, s.t.n, i+1
	switch {
	case idx > n:
		if j, ok := firstLine[n]; ok && j > i {
			s.fail(Reordered, line, idx, "record %d comes before record %d (line %d)", idx, n, j+1)
		} else if n+1 == idx {
			s.fail(Deleted, line, n, "record %d is missing before line %d", n, line)
		} else {
			s.fail(Deleted, line, n, "records %d..%d are missing before line %d", n, idx-1, line)
		}
		return false
	case idx < n:
		if n >= 2 && idx == n-1 && in.Prev == s.t.prevOf(n-1) {
			p := s.lineOf[n-1]
			s.fail(Inserted, p, n-1, "line %d is not part of the chain: record %d at line %d follows the record before it", p, idx, line)
		} else {
			s.fail(Inserted, line, idx, "record %d appears again (first at line %d)", idx, firstLine[idx]+1)
		}
		return false
	}
	if want := s.t.prevOf(n); in.Prev != want {
		// A forged line with the next index: the real record follows it
		// with the same index, chained to the record before the forgery.
		if j := nextRecord(ps, i); j >= 0 && *ps[j].in.Index == n && ps[j].in.Prev == want {
			s.fail(Inserted, line, n, "line %d is not part of the chain: record %d at line %d follows the record before it", line, n, j+1)
		} else if n == 0 {
			s.fail(Modified, line, 0, "record 0 has prev %s, want zeros", in.Prev)
		} else {
			p := s.lineOf[n-1]
			s.fail(Modified, p, n-1, "record %d (line %d) was modified: its hash does not match the prev of record %d (line %d)", n-1, p, n, line)
		}
		return false
	}
	if err := s.t.add(tlog.RecordHash(lines[i])); err != nil {
		s.fail(Malformed, line, n, "tree: %v", err)
		return false
	}
	s.lineOf = append(s.lineOf, line)
	s.report.Records = s.t.n
	return true
}

func (s *scanner) checkpoint(lines [][]byte, ps []parsed, i int) bool {
	line := i + 1
	nt, err := note.Open([]byte(*ps[i].in.Note), s.verifiers)
	if err != nil {
		s.fail(BadSignature, line, -1, "checkpoint signature does not verify: %v", err)
		return false
	}
	origin, size, root, err := parseCheckpoint(nt.Text)
	if err != nil {
		s.fail(Malformed, line, -1, "%v", err)
		return false
	}
	if s.origin == "" {
		s.origin = origin
	} else if origin != s.origin {
		s.fail(Malformed, line, -1, "checkpoint origin %q differs from the first checkpoint's %q", origin, s.origin)
		return false
	}
	n := s.t.n
	switch {
	case size > n && !hasRecordAfter(ps, i):
		s.fail(Truncated, line, n, "the checkpoint covers %d records but the log holds only %d: records %d..%d were cut off", size, n, n, size-1)
		return false
	case size > n:
		s.fail(Deleted, line, n, "the checkpoint covers %d records but only %d precede it: records %d..%d are missing", size, n, n, size-1)
		return false
	case size < s.report.VerifiedSize:
		s.fail(Reordered, line, size, "checkpoint of size %d after one of size %d", size, s.report.VerifiedSize)
		return false
	case size < n:
		s.fail(Inserted, s.lineOf[size], size, "records %d..%d (from line %d) precede the checkpoint at line %d of size %d: inserted, or the checkpoint was moved", size, n-1, s.lineOf[size], line, size)
		return false
	}
	got, err := s.t.root(size)
	if err != nil {
		s.fail(Malformed, line, -1, "tree: %v", err)
		return false
	}
	if got != root {
		// The chain holds up to record size-1; if the next record's prev
		// disagrees with it, that last record is the one modified.
		if size > 0 {
			if j := nextRecord(ps, i); j >= 0 && *ps[j].in.Index == size && ps[j].in.Prev != s.t.prevOf(size) {
				p := s.lineOf[size-1]
				s.fail(Modified, p, size-1, "record %d (line %d) was modified: the checkpoint at line %d and the prev of record %d (line %d) disagree with it", size-1, p, line, size, j+1)
				return false
			}
		}
		from := s.report.VerifiedSize
		s.fail(Modified, line, from, "the checkpoint's root does not match records %d..%d: one of them (lines %d..%d) was modified", from, size-1, s.lineOfOr(from), s.lineOfOr(size-1))
		return false
	}
	s.report.Checkpoints++
	s.report.VerifiedSize = size
	return true
}

func (s *scanner) lineOfOr(i int64) int {
	if i >= 0 && i < int64(len(s.lineOf)) {
		return s.lineOf[i]
	}
	return 0
}

func hasRecordAfter(ps []parsed, i int) bool {
	for j := i + 1; j < len(ps); j++ {
		if ps[j].err == nil && ps[j].in.Type == typeEvent {
			return true
		}
	}
	return false
}

// resignVerifier verifies signatures made by a signer, without its public
// key: Ed25519 signatures are deterministic, so signing again must give the
// same bytes. Open uses it to check the file it recovers.
type resignVerifier struct{ note.Signer }

func (v resignVerifier) Verify(msg, sig []byte) bool {
	again, err := v.Sign(msg)
	return err == nil && bytes.Equal(again, sig)
}
