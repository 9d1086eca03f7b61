package config

import (
	"fmt"
	"regexp"
)

// AuditArguments makes the audit log record calls' full arguments, redacted
// (audit.arguments). Off by default: the argument digest (args_sha256) is
// always recorded, the arguments themselves only when asked for, since they
// may hold what the log's readers should not see.
type AuditArguments struct {
	// Record turns it on for tools/call and prompts/get.
	Record bool `yaml:"record"`
	// RedactKeys are object keys (any depth, compared case-insensitively)
	// whose values are replaced by "[REDACTED]". Default:
	// DefaultAuditRedactKeys; set it to replace that list.
	RedactKeys []string `yaml:"redact_keys"`
	// Redact are RE2 patterns; their matches in any string value are
	// replaced by "[REDACTED]".
	Redact []string `yaml:"redact"`
	// MaxBytes caps the recorded arguments (after redaction); larger ones
	// are left out and the record says so. Default DefaultAuditArgumentsMaxBytes.
	MaxBytes int `yaml:"max_bytes"`
}

// Defaults of audit.arguments.
var DefaultAuditRedactKeys = []string{"password", "passwd", "secret", "token", "api_key", "apikey",
	"authorization", "cookie", "private_key", "client_secret", "access_token", "refresh_token"}

const (
	DefaultAuditArgumentsMaxBytes = 16 << 10
	maxAuditArgumentsMaxBytes     = 1 << 20
)

func (a *AuditArguments) applyDefaults() {
	if a.RedactKeys == nil {
		a.RedactKeys = DefaultAuditRedactKeys
	}
	setDefault(&a.MaxBytes, DefaultAuditArgumentsMaxBytes)
}

func (a AuditArguments) validate(add addFunc) {
	for i, r := range a.Redact {
		re, err := regexp.Compile(r)
		switch {
		case err != nil:
			add(fmt.Sprintf("audit.arguments.redact[%d]", i), "not a regular expression: %v", err)
		case re.MatchString(""):
			add(fmt.Sprintf("audit.arguments.redact[%d]", i), "%q matches the empty string: it would redact everywhere", r)
		}
	}
	for i, k := range a.RedactKeys {
		if k == "" {
			add(fmt.Sprintf("audit.arguments.redact_keys[%d]", i), "is empty")
		}
	}
	if a.MaxBytes < 1 || a.MaxBytes > maxAuditArgumentsMaxBytes {
		add("audit.arguments.max_bytes", "must be from 1 to %d", maxAuditArgumentsMaxBytes)
	}
}
