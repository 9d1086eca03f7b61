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
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

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
	File  string // the file, when several were verified (VerifyFiles); "" for Verify
	Line  int    // 1-based line of the file the problem is reported at
	Index int64  // the record index concerned, or -1
	Msg   string // what exactly, for a human
}

func (p *Problem) Error() string {
	if p.File != "" {
		return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Kind, p.Msg)
	}
	return fmt.Sprintf("line %d: %s: %s", p.Line, p.Kind, p.Msg)
}

// Report is the result of checking a log file or a sequence of them.
type Report struct {
	// Records is the tree size reached: the index after the last record
	// read (up to the problem, if any). Records read is Records - Start.
	Records      int64
	Checkpoints  int   // checkpoints whose signature and root verified
	VerifiedSize int64 // tree size covered by the last verified signature (checkpoint or continuation header)
	// Start is the index of the first record verified: 0, or the size a
	// continuation header that had to be trusted (its predecessor was not
	// verified) says precedes it.
	Start int64
	// TrustedHeader names the file whose continuation header was trusted
	// as the starting point (its signature verified; the predecessor it
	// names was not checked); "" when verification began at record 0.
	TrustedHeader string
	// Predecessor is the file the trusted header says came before.
	Predecessor string
	// Files is how many files were verified.
	Files int
	// External is the size of the external checkpoint (VerifyOptions)
	// found to match the log; -1 if none was given or it was not reached.
	External int64
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
// signed; Report.Unsigned counts them. A file that begins with a
// continuation header (it follows a rotated predecessor) is verified from
// the tree state the header states, once its signature verifies:
// Report.TrustedHeader says so. VerifyFiles checks predecessors too.
func Verify(r io.Reader, verifier note.Verifier) (*Report, error) {
	lines, torn, err := readLines(r)
	if err != nil {
		return &Report{External: -1}, err
	}
	s := newScanner(note.VerifierList(verifier))
	s.file(lines, "")
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

// checkpointOut is also the shape of a continuation header line.
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
	// typeContinuation is the first line of a file that continues a
	// rotated one: a signed note binding it to its predecessor.
	typeContinuation = "continuation"
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
	case typeCheckpoint, typeContinuation:
		if p.in.Note == nil || p.in.Index != nil || p.in.Event != nil || p.in.Prev != "" {
			p.err = errors.New(p.in.Type + " must have only a note")
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

// continuation is a continuation header: the signed statement, first line
// of a file that follows a rotated one, of where the tree stood when the
// predecessor was closed.
type continuation struct {
	origin      string
	seq         int64  // this file's sequence number (the first file is 0)
	predecessor string // the rotated predecessor's base name
	size        int64  // records in all files before this one
	prev        tlog.Hash
	created     time.Time
	frontier    []tlog.Hash
}

// continuationTag is the second line of a continuation note's body: it
// can never parse as a checkpoint's size, so neither note can pass for the
// other.
const continuationTag = "mcpgate-audit-continuation"

func (c *continuation) format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s %d\n%s\n%d\n%s\n%s\n", c.origin, continuationTag, c.seq, c.predecessor, c.size,
		hex.EncodeToString(c.prev[:]), c.created.UTC().Format(time.RFC3339Nano))
	for _, h := range c.frontier {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	return b.String()
}

func parseContinuation(text string) (*continuation, error) {
	ls := strings.Split(text, "\n")
	if len(ls) < 7 || ls[len(ls)-1] != "" || ls[0] == "" {
		return nil, errors.New("continuation header body is not origin, tag, predecessor, size, prev, time, hashes")
	}
	ls = ls[:len(ls)-1]
	c := &continuation{origin: ls[0]}
	seq, ok := strings.CutPrefix(ls[1], continuationTag+" ")
	var err error
	if c.seq, err = strconv.ParseInt(seq, 10, 64); !ok || err != nil || c.seq < 1 || seq != strconv.FormatInt(c.seq, 10) {
		return nil, fmt.Errorf("continuation header tag %q", ls[1])
	}
	c.predecessor = ls[2]
	if c.predecessor == "" || strings.ContainsAny(c.predecessor, `/\`) || c.predecessor == "." || c.predecessor == ".." {
		return nil, fmt.Errorf("continuation header predecessor %q", ls[2])
	}
	if c.size, err = strconv.ParseInt(ls[3], 10, 64); err != nil || c.size < 0 || ls[3] != strconv.FormatInt(c.size, 10) {
		return nil, fmt.Errorf("continuation header size %q", ls[3])
	}
	if c.size == 0 && ls[4] == zeroPrev {
		// no records before: prev stays zero
	} else if b, err := hex.DecodeString(ls[4]); err != nil || len(b) != tlog.HashSize || !isHex64(ls[4]) {
		return nil, fmt.Errorf("continuation header prev %q", ls[4])
	} else {
		copy(c.prev[:], b)
	}
	if c.created, err = time.Parse(time.RFC3339Nano, ls[5]); err != nil {
		return nil, fmt.Errorf("continuation header time %q", ls[5])
	}
	for _, l := range ls[6:] {
		b, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("continuation header hash %q", l)
		}
		c.frontier = append(c.frontier, tlog.Hash(b))
	}
	if _, ok := restore(c.size, c.prev, c.frontier); !ok {
		return nil, fmt.Errorf("continuation header has %d hashes for a tree of size %d", len(c.frontier), c.size)
	}
	return c, nil
}

// external is a checkpoint kept apart from the log, to be matched.
type external struct {
	size int64
	root tlog.Hash
}

// scanner checks lines in order, file after file; Open and Verify share it.
type scanner struct {
	verifiers note.Verifiers
	t         tree
	report    Report
	origin    string // of the first checkpoint or header
	name      string // the current file, for problems ("" for a lone reader)
	files     int    // files finished
	prevName  string // base name of the last file finished
	prevPath  string
	prevLines int
	lastPrev  string // the prev record n-1 carried
	// lineOf[i] is the line of record base+i of the current file.
	base   int64
	lineOf []int
	// created is when the current file began: its header's time, else its
	// first record's; seq is its sequence number (0 without a header).
	created time.Time
	seq     int64
	header  bool // the current file began with a continuation header
	want    *external
	// extNote explains an external checkpoint that could not be checked.
	extNote string
}

func newScanner(v note.Verifiers) *scanner {
	return &scanner{verifiers: v, report: Report{External: -1}}
}

func (s *scanner) fail(kind Kind, line int, index int64, format string, args ...any) {
	s.report.Problem = &Problem{Kind: kind, File: s.name, Line: line, Index: index, Msg: fmt.Sprintf(format, args...)}
}

// file checks the lines of one file, continuing from the files before it.
func (s *scanner) file(lines [][]byte, name string) {
	s.name = name
	s.base, s.lineOf = s.t.n, s.lineOf[:0]
	s.created, s.seq, s.header = time.Time{}, 0, false
	defer func() {
		s.files++
		s.prevName, s.prevPath, s.prevLines = filepath.Base(name), name, len(lines)
	}()
	if s.want != nil && s.want.size == 0 && s.report.External < 0 {
		s.report.External = 0
	}
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
	if s.files > 0 && len(lines) > 0 && (ps[0].err != nil || ps[0].in.Type != typeContinuation) {
		s.fail(Deleted, 1, s.t.n, "%s does not continue %s: its continuation header is missing", filepath.Base(name), s.prevName)
		return
	}
	for i := range lines {
		if ps[i].err != nil {
			s.fail(Malformed, i+1, -1, "%v", ps[i].err)
			return
		}
		var ok bool
		switch ps[i].in.Type {
		case typeEvent:
			ok = s.record(lines, ps, firstLine, i)
		case typeCheckpoint:
			ok = s.checkpoint(ps, i)
		case typeContinuation:
			if i > 0 {
				s.fail(Inserted, i+1, -1, "a continuation header can only be the first line of a file")
				return
			}
			ok = s.continuation(ps[i])
		}
		if !ok {
			return
		}
	}
}

// finish checks, after the last file, what only the end can tell.
func (s *scanner) finish() {
	if s.report.Problem != nil || s.want == nil || s.report.External >= 0 || s.extNote != "" {
		return
	}
	s.name = s.prevPath
	s.fail(Truncated, s.prevLines+1, s.t.n, "the log has %d records, the checkpoint covers %d: records %d..%d were cut off",
		s.t.n, s.want.size, s.t.n, s.want.size-1)
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
		if n-s.base >= 2 && idx == n-1 && in.Prev == s.lastPrev {
			p := s.lineOfOr(n-1, line)
			s.fail(Inserted, p, n-1, "line %d is not part of the chain: record %d at line %d follows the record before it", p, idx, line)
		} else if j, ok := firstLine[idx]; ok && j < i {
			s.fail(Inserted, line, idx, "record %d appears again (first at line %d)", idx, j+1)
		} else {
			s.fail(Inserted, line, idx, "record %d appears again (it precedes this file's first record, %d)", idx, s.base)
		}
		return false
	}
	if want := s.t.prev(); in.Prev != want {
		// A forged line with the next index: the real record follows it
		// with the same index, chained to the record before the forgery.
		if j := nextRecord(ps, i); j >= 0 && *ps[j].in.Index == n && ps[j].in.Prev == want {
			s.fail(Inserted, line, n, "line %d is not part of the chain: record %d at line %d follows the record before it", line, n, j+1)
		} else if n == 0 {
			s.fail(Modified, line, 0, "record 0 has prev %s, want zeros", in.Prev)
		} else if n == s.base {
			s.fail(Modified, line, n, "record %d does not chain to the continuation header (its prev is %s, want %s)", n, in.Prev, want)
		} else {
			p := s.lineOfOr(n-1, line)
			s.fail(Modified, p, n-1, "record %d (line %d) was modified: its hash does not match the prev of record %d (line %d)", n-1, p, n, line)
		}
		return false
	}
	if n == s.base { // the file's first record: when it began, for rotation by age
		var ev struct {
			Event struct {
				Time time.Time `json:"time"`
			} `json:"event"`
		}
		if json.Unmarshal(lines[i], &ev) == nil {
			s.created = ev.Event.Time
		}
	}
	s.t.add(tlog.RecordHash(lines[i]))
	s.lastPrev = in.Prev
	s.lineOf = append(s.lineOf, line)
	s.report.Records = s.t.n
	if s.want != nil && s.t.n == s.want.size {
		if s.t.root() != s.want.root {
			s.fail(Modified, line, n, "the log's tree at size %d (up to record %d, line %d) does not match the external checkpoint: records were modified or the log was rewritten", s.want.size, n, line)
			return false
		}
		s.report.External = s.want.size
	}
	return true
}

func (s *scanner) checkpoint(ps []parsed, i int) bool {
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
	if !s.sameOrigin(origin, line) {
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
		p := s.lineOfOr(size, line)
		s.fail(Inserted, p, size, "records %d..%d (from line %d) precede the checkpoint at line %d of size %d: inserted, or the checkpoint was moved", size, n-1, p, line, size)
		return false
	}
	if s.t.root() != root {
		// The chain holds up to record size-1; if the next record's prev
		// disagrees with it, that last record is the one modified.
		if size > s.base {
			if j := nextRecord(ps, i); j >= 0 && *ps[j].in.Index == size && ps[j].in.Prev != s.t.prev() {
				p := s.lineOfOr(size-1, line)
				s.fail(Modified, p, size-1, "record %d (line %d) was modified: the checkpoint at line %d and the prev of record %d (line %d) disagree with it", size-1, p, line, size, j+1)
				return false
			}
		}
		from := max(s.report.VerifiedSize, s.base)
		s.fail(Modified, line, from, "the checkpoint's root does not match records %d..%d: one of them (lines %d..%d) was modified", from, size-1, s.lineOfOr(from, 0), s.lineOfOr(size-1, 0))
		return false
	}
	s.report.Checkpoints++
	s.report.VerifiedSize = size
	return true
}

func (s *scanner) sameOrigin(origin string, line int) bool {
	if s.origin == "" {
		s.origin = origin
	} else if origin != s.origin {
		s.fail(Malformed, line, -1, "origin %q differs from the log's %q", origin, s.origin)
		return false
	}
	return true
}

// continuation checks a file's header: against the file before it, or,
// for the first file verified, takes the tree state it states on the
// strength of its signature.
func (s *scanner) continuation(p parsed) bool {
	nt, err := note.Open([]byte(*p.in.Note), s.verifiers)
	if err != nil {
		s.fail(BadSignature, 1, -1, "continuation header signature does not verify: %v", err)
		return false
	}
	c, err := parseContinuation(nt.Text)
	if err != nil {
		s.fail(Malformed, 1, -1, "%v", err)
		return false
	}
	if !s.sameOrigin(c.origin, 1) {
		return false
	}
	if s.files == 0 {
		s.t, _ = restore(c.size, c.prev, c.frontier)
		s.base, s.lastPrev = c.size, ""
		s.report.Start, s.report.Records, s.report.VerifiedSize = c.size, c.size, c.size
		s.report.TrustedHeader, s.report.Predecessor = s.name, c.predecessor
		if s.report.TrustedHeader == "" {
			s.report.TrustedHeader = "(the file)"
		}
		if s.want != nil {
			switch {
			case s.want.size == c.size && s.t.root() != s.want.root:
				s.fail(Modified, 1, c.size, "the tree the continuation header states does not match the external checkpoint of size %d", c.size)
				return false
			case s.want.size == c.size:
				s.report.External = c.size
			case s.want.size < c.size:
				s.extNote = fmt.Sprintf("the checkpoint covers %d records, which precede the first file verified (it starts at record %d): verify with the rotated predecessors", s.want.size, c.size)
			}
		}
	} else {
		n := s.t.n
		switch {
		case c.predecessor != s.prevName:
			s.fail(Deleted, 1, n, "the continuation header names %s as the file before, but the file before is %s: files are missing or out of order", c.predecessor, s.prevName)
			return false
		case c.size > n:
			s.name = s.prevPath
			s.fail(Truncated, s.prevLines+1, n, "%s ends at record %d but its successor's header says it held records up to %d: records %d..%d were cut off", s.prevName, n, c.size, n, c.size-1)
			return false
		case c.size < n:
			s.fail(Inserted, 1, c.size, "the continuation header says %s held %d records, but it holds %d: records %d..%d were inserted", s.prevName, c.size, n, c.size, n-1)
			return false
		case c.prev != s.t.last || !slices.Equal(c.frontier, s.t.frontier):
			s.fail(Modified, 1, n-1, "the tree at the end of %s does not match the continuation header: one of its records after its last checkpoint was modified", s.prevName)
			return false
		}
		s.report.VerifiedSize = n
	}
	s.created, s.seq, s.header = c.created, c.seq, true
	return true
}

func (s *scanner) lineOfOr(i int64, or int) int {
	if i >= s.base && i-s.base < int64(len(s.lineOf)) {
		return s.lineOf[i-s.base]
	}
	return or
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
