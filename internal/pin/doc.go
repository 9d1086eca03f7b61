// Package pin is mcpgate's tool lockfile and poisoned-description detector.
//
// A lockfile (mcpgate.lock, written by mcpgate pin, reviewed and committed
// like go.sum) pins every tool, prompt and resource template each upstream
// serves by the SHA-256 of its canonical definition: the fields that
// define it (name, title, description, schemas, annotations, arguments,
// URI template), serialized as RFC 8785 specifies. At run time the gateway
// checks each definition an upstream serves against the lock: one that is
// new, or differs from its pinned digest, is a "rug pull" candidate, to be
// quarantined (or, in warn mode, only reported) until someone re-pins. The
// lock keeps each canonical definition as well as its digest, so that a
// change is shown as a field-by-field diff and reviewed in git.
//
// Findings scans definitions for poisoned descriptions: hidden Unicode
// (tag characters, bidi controls, zero-width and other format characters),
// instructions aimed at the model, references to credentials or to another
// upstream's tools, and tool names that shadow another upstream's.
//
// The package is pure: it does no I/O, and its values are safe for
// concurrent use.
package pin
