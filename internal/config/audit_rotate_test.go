package config

import (
	"strings"
	"testing"
	"time"
)

func TestAuditRotateValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Audit)
		bytes int64
		key   string // the problem's key; "" for none
	}{
		{"off", func(*Audit) {}, 0, ""},
		{"bytes as an integer", func(a *Audit) { a.Rotate.MaxBytes = "1048576" }, 1 << 20, ""},
		{"bytes with a suffix", func(a *Audit) { a.Rotate.MaxBytes = "64MiB" }, 64 << 20, ""},
		{"zero is off", func(a *Audit) { a.Rotate.MaxBytes = "0" }, 0, ""},
		{"too small", func(a *Audit) { a.Rotate.MaxBytes = "100" }, 100, "audit.rotate.max_bytes"},
		{"not a size", func(a *Audit) { a.Rotate.MaxBytes = "big" }, 0, "audit.rotate.max_bytes"},
		{"age", func(a *Audit) { a.Rotate.MaxAge = 24 * time.Hour }, 0, ""},
		{"negative age", func(a *Audit) { a.Rotate.MaxAge = -time.Hour }, 0, "audit.rotate.max_age"},
		{"copy is the log", func(a *Audit) { a.CheckpointCopy = a.Path }, 0, "audit.checkpoint_copy"},
		{"copy without a log", func(a *Audit) { a.Path, a.SigningKey, a.CheckpointCopy = "", "", "/elsewhere/ckpt" }, 0, "audit.path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Audit.Path, c.Audit.SigningKey = "/var/lib/mcpgate/audit.jsonl", "/etc/mcpgate/audit.key"
			tt.edit(&c.Audit)
			var got []string
			c.validateAuditExtras(func(key, format string, args ...any) { got = append(got, key) })
			if tt.key == "" && len(got) > 0 || tt.key != "" && !strings.Contains(strings.Join(got, ","), tt.key) {
				t.Fatalf("problems %v, want %q", got, tt.key)
			}
			if tt.key == "" && c.Audit.Rotate.Bytes() != tt.bytes {
				t.Fatalf("Bytes() = %d, want %d", c.Audit.Rotate.Bytes(), tt.bytes)
			}
		})
	}
}
