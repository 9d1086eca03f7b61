package audit_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpgate/mcpgate/internal/audit"
)

func Example() {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "example")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)

	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "audit.jsonl")

	l, err := audit.Open(path, signer, audit.Options{})
	if err != nil {
		panic(err)
	}
	for _, who := range []string{"alice", "bob", "carol"} {
		ev := audit.Event{
			Time: time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC), Principal: who, AuthMethod: "api_key",
			Method: "tools/call", Name: "echo", Decision: audit.Allow, ArgsSHA256: audit.ArgsDigest([]byte(`{"text":"hi"}`)),
		}
		if err := l.Append(context.Background(), ev); err != nil {
			panic(err) // refuse the call: it could not be audited
		}
	}
	l.Close() // writes the final signed checkpoint

	f, _ := os.Open(path)
	rep, err := audit.Verify(f, verifier)
	f.Close()
	fmt.Println(rep.Records, "records,", rep.Checkpoints, "checkpoint, err:", err)

	b, _ := os.ReadFile(path)
	tampered := strings.Replace(string(b), `"bob"`, `"eve"`, 1)
	_, err = audit.Verify(strings.NewReader(tampered), verifier)
	fmt.Println(err)
	// Output:
	// 3 records, 1 checkpoint, err: <nil>
	// line 2: modified: record 1 (line 2) was modified: its hash does not match the prev of record 2 (line 3)
}
