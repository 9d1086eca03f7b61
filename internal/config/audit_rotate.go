package config

import "time"

// AuditRotate configures rotation of the audit log: the file is closed
// with a checkpoint, renamed to PATH.<UTC time>.<n>, and a new file at the
// path continues the same hash chain and Merkle tree. Either limit, or both,
// may be set; absent or 0 means that limit is off.
type AuditRotate struct {
	// MaxBytes rotates the file once it reaches this size: bytes as an
	// integer, or with a KiB/MiB/GiB/TiB suffix ("64MiB"). At least 1KiB.
	MaxBytes string `yaml:"max_bytes"`
	// MaxAge rotates the file once its first record is this old ("24h").
	MaxAge time.Duration `yaml:"max_age"`
}

// MinAuditRotateBytes is the smallest audit.rotate.max_bytes: below it
// every write would rotate.
const MinAuditRotateBytes = 1 << 10

// Bytes is MaxBytes in bytes; 0 when off or invalid (Validate reports it).
func (r AuditRotate) Bytes() int64 {
	if r.MaxBytes == "" || r.MaxBytes == "0" {
		return 0
	}
	n, err := parseLimit(r.MaxBytes, true)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// validateAuditExtras reports the problems of the audit keys added with
// rotation: audit.rotate and audit.checkpoint_copy.
func (c *Config) validateAuditExtras(add addFunc) {
	a := c.Audit
	if r := a.Rotate.MaxBytes; r != "" && r != "0" {
		if n, err := parseLimit(r, true); err != nil || n < MinAuditRotateBytes {
			add("audit.rotate.max_bytes", "%q must be a size of at least 1KiB, like 1048576 or 64MiB (0 or absent: off)", r)
		}
	}
	if a.Rotate.MaxAge < 0 || (a.Rotate.MaxAge > 0 && a.Rotate.MaxAge < time.Second) {
		add("audit.rotate.max_age", "must be at least 1s (0 or absent: off)")
	}
	if a.Path == "" && (a.CheckpointCopy != "" || a.Rotate != (AuditRotate{})) {
		add("audit.path", "required with audit.rotate and audit.checkpoint_copy")
	}
	if a.CheckpointCopy != "" && a.CheckpointCopy == a.Path {
		add("audit.checkpoint_copy", "must not be the log itself: keep it on another disk, or ship it away")
	}
}
