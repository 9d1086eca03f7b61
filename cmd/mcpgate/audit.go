package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpgate/mcpgate/internal/audit"
)

const auditUsage = "audit: usage: mcpgate audit keygen [--name NAME] [--out PREFIX] | mcpgate audit verify FILE... --key PUBFILE [--checkpoint CKPT] [--single]"

// errNotHeld reports a log that does not verify; the problem was printed.
var errNotHeld = errors.New("audit log does not verify")

func auditCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{auditUsage}
	}
	switch args[0] {
	case "keygen":
		return auditKeygen(args[1:], stdout, stderr)
	case "verify":
		return auditVerify(args[1:], stdout, stderr)
	default:
		return usageError{auditUsage}
	}
}

func auditKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit keygen", stderr)
	name := fs.String("name", "mcpgate-audit", "the key's name, as it appears in signed checkpoints")
	out := fs.String("out", "audit", "write PREFIX.key (signing key, 0600) and PREFIX.pub (verifier key)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, *name)
	if err != nil {
		return usageError{fmt.Sprintf("audit keygen: --name %q: %v", *name, err)}
	}
	keyFile, pubFile := *out+".key", *out+".pub"
	// O_EXCL: never overwrite a key that may have signed a log.
	if err := writeNew(keyFile, skey+"\n", 0o600); err != nil {
		return err
	}
	if err := writeNew(pubFile, vkey+"\n", 0o644); err != nil {
		os.Remove(keyFile)
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (signing key: keep it secret, readable only by mcpgate)\nwrote %s (verifier key: %s)\n", keyFile, pubFile, vkey)
	return nil
}

func writeNew(path, content string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("audit keygen: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("audit keygen: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit keygen: sync %s: %w", path, err)
	}
	return f.Close()
}

func auditVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit verify", stderr)
	keyFile := fs.String("key", "", "verifier key file (PREFIX.pub from audit keygen; required)")
	ckptFile := fs.String("checkpoint", "", "a signed checkpoint kept apart from the log (audit.checkpoint_copy): the log must hold its tree")
	single := fs.Bool("single", false, "verify FILE alone, trusting its continuation header, instead of finding its rotated predecessors")
	// FILEs and flags may come in any order.
	var files []string
	for len(args) > 0 {
		if !strings.HasPrefix(args[0], "-") {
			files, args = append(files, args[0]), args[1:]
			continue
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err.Error()}
		}
		args = fs.Args()
	}
	if len(files) == 0 || *keyFile == "" {
		return usageError{"audit verify: usage: mcpgate audit verify FILE... --key PUBFILE [--checkpoint CKPT] [--single]"}
	}
	vkey, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		return fmt.Errorf("audit verify: %s: not a verifier key: %v", *keyFile, err)
	}
	var opts audit.VerifyOptions
	if *ckptFile != "" {
		if opts.Checkpoint, err = os.ReadFile(*ckptFile); err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
	}
	var missing string
	var stray []string
	if len(files) == 1 && !*single {
		// The log path (or any file of it): verify it with every rotated
		// file before it, found through the continuation headers.
		if files, missing, stray, err = audit.Sequence(files[0]); err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		if missing != "" && len(stray) > 0 {
			fmt.Fprintf(stdout, "FAIL: %s:1: deleted: the file before it, %s, is missing, yet older rotated files remain (%s)\n",
				files[0], filepath.Base(missing), strings.Join(stray, ", "))
			return errNotHeld
		}
	}
	rep, err := audit.VerifyFiles(files, verifier, opts)
	var p *audit.Problem
	switch {
	case errors.As(err, &p):
		fmt.Fprintf(stdout, "FAIL: %s:%d: %s: %s\n", p.File, p.Line, p.Kind, p.Msg)
		fmt.Fprintf(stdout, "(%d records and %d checkpoints verified before it)\n", rep.Records-rep.Start, rep.Checkpoints)
		return errNotHeld
	case err != nil:
		return fmt.Errorf("audit verify: %w", err)
	}
	if len(files) == 1 && rep.Start == 0 {
		fmt.Fprintf(stdout, "ok: %d records, %d checkpoints\n", rep.Records, rep.Checkpoints)
	} else {
		fmt.Fprintf(stdout, "ok: records %d..%d in %d files, %d checkpoints\n", rep.Start, rep.Records-1, rep.Files, rep.Checkpoints)
	}
	if rep.TrustedHeader != "" {
		fmt.Fprintf(stdout, "note: verification starts at record %d, trusting the signed continuation header of %s; its predecessor %s was not verified\n",
			rep.Start, rep.TrustedHeader, rep.Predecessor)
	}
	if rep.External >= 0 {
		fmt.Fprintf(stdout, "checkpoint: the log holds the tree of %d records that %s signs\n", rep.External, *ckptFile)
	}
	if len(stray) > 0 {
		fmt.Fprintf(stdout, "note: rotated files not part of this log's sequence: %s\n", strings.Join(stray, ", "))
	}
	if n := rep.Unsigned(); n > 0 {
		fmt.Fprintf(stdout, "note: the last %d records follow the last checkpoint: chained but not yet signed\n", n)
	}
	if rep.TornLine > 0 {
		fmt.Fprintf(stdout, "note: line %d of %s is incomplete (a write cut short by a crash) and was ignored\n", rep.TornLine, files[len(files)-1])
	}
	return nil
}
