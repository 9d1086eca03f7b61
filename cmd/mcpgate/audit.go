package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpgate/mcpgate/internal/audit"
)

const auditUsage = "audit: usage: mcpgate audit keygen [--name NAME] [--out PREFIX] | mcpgate audit verify FILE --key PUBFILE"

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
	// FILE may come before or after the flags.
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	fs := newFlags("audit verify", stderr)
	keyFile := fs.String("key", "", "verifier key file (PREFIX.pub from audit keygen; required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	rest := fs.Args()
	if file == "" && len(rest) > 0 {
		file, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", rest[0])}
	}
	if file == "" || *keyFile == "" {
		return usageError{"audit verify: usage: mcpgate audit verify FILE --key PUBFILE"}
	}
	vkey, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		return fmt.Errorf("audit verify: %s: not a verifier key: %v", *keyFile, err)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	defer f.Close()
	rep, err := audit.Verify(f, verifier)
	var p *audit.Problem
	switch {
	case errors.As(err, &p):
		fmt.Fprintf(stdout, "FAIL: %s:%d: %s: %s\n", file, p.Line, p.Kind, p.Msg)
		fmt.Fprintf(stdout, "(%d records and %d checkpoints verified before it)\n", rep.Records, rep.Checkpoints)
		return errNotHeld
	case err != nil:
		return fmt.Errorf("audit verify: read %s: %w", file, err)
	}
	fmt.Fprintf(stdout, "ok: %d records, %d checkpoints\n", rep.Records, rep.Checkpoints)
	if n := rep.Unsigned(); n > 0 {
		fmt.Fprintf(stdout, "note: the last %d records follow the last checkpoint: chained but not yet signed\n", n)
	}
	if rep.TornLine > 0 {
		fmt.Fprintf(stdout, "note: line %d is incomplete (a write cut short by a crash) and was ignored\n", rep.TornLine)
	}
	return nil
}
