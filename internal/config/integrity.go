package config

import "os"

// ToolIntegrity configures the tool lockfile: the reviewed digests of every
// tool, prompt and resource template the upstreams serve (written by
// `mcpgate pin`). A definition that is new or differs from the lockfile is
// quarantined: hidden and uncallable until someone re-pins.
type ToolIntegrity struct {
	// Lockfile is the lockfile's path, relative to the config file; it
	// defaults to DefaultLockfile beside the config.
	Lockfile string `yaml:"lockfile"`
	// Mode is IntegrityEnforce (quarantine), IntegrityWarn (admit, but log,
	// count and audit each mismatch: for first adoption) or IntegrityOff.
	// Empty means enforce when the lockfile exists and off when it does not.
	Mode string `yaml:"mode"`
	// Findings is IntegrityWarn (report poisoned descriptions) or
	// IntegrityBlock (also quarantine the definitions they are found in).
	Findings string `yaml:"findings"`
}

// Tool integrity settings.
const (
	DefaultLockfile  = "mcpgate.lock"
	IntegrityEnforce = "enforce"
	IntegrityWarn    = "warn"
	IntegrityOff     = "off"
	IntegrityBlock   = "block"
)

// EffectiveMode resolves an empty Mode: enforce once a lockfile exists.
func (t ToolIntegrity) EffectiveMode() string {
	if t.Mode != "" {
		return t.Mode
	}
	if t.Lockfile != "" {
		if _, err := os.Stat(t.Lockfile); err == nil {
			return IntegrityEnforce
		}
	}
	return IntegrityOff
}

func (t ToolIntegrity) validate(add addFunc) {
	switch t.Mode {
	case "", IntegrityEnforce, IntegrityWarn, IntegrityOff:
	default:
		add("tool_integrity.mode", "%q must be %s, %s or %s", t.Mode, IntegrityEnforce, IntegrityWarn, IntegrityOff)
	}
	switch t.Findings {
	case "", IntegrityWarn, IntegrityBlock:
	default:
		add("tool_integrity.findings", "%q must be %s or %s", t.Findings, IntegrityWarn, IntegrityBlock)
	}
	if (t.Mode == IntegrityEnforce || t.Mode == IntegrityWarn) && t.Lockfile == "" {
		add("tool_integrity.lockfile", "required with mode %s", t.Mode)
	}
}
