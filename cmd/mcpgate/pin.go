package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/pin"
)

// pinCmd starts every upstream of the config, lists what each serves, and
// writes the tool lockfile: the reviewed digests a serving gateway checks
// every definition against. It reports what changed since the previous
// lockfile and every poisoned description it finds.
func pinCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pin", stderr)
	configPath := fs.String("config", "", "config file whose upstreams to pin (required)")
	lockPath := fs.String("lockfile", "", "lockfile to write (default: tool_integrity.lockfile, mcpgate.lock beside the config)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" {
		return usageError{"pin: --config FILE is required"}
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	path := cfg.ToolIntegrity.Lockfile
	if *lockPath != "" {
		path = *lockPath
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	defs, err := gateway.CollectDefinitions(ctx, cfg, logger)
	if err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	lock, err := pin.NewLock(defs)
	if err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	old, err := readOldLock(path, stderr)
	if err != nil {
		return err
	}
	var added, changed, removed int
	for _, d := range defs {
		switch v := old.Check(d); v.Status {
		case pin.New:
			added++
			fmt.Fprintf(stdout, "new:     %s %s %s\n", d.Upstream, d.Kind, d.Name)
		case pin.Changed:
			changed++
			fmt.Fprintf(stdout, "changed: %s %s %s\n         %s\n", d.Upstream, d.Kind, d.Name, v.Diff)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		for _, e := range old.Missing(name, defs) {
			removed++
			fmt.Fprintf(stdout, "removed: %s %s %s\n", e.Upstream, e.Kind, e.Name)
		}
	}
	findings := pin.Findings(defs)
	for _, f := range findings {
		fmt.Fprintf(stdout, "finding: %s %s %s: %s: %s\n", f.Upstream, f.Kind, f.Name, f.Rule, f.Detail)
	}
	if err := writeAtomic(path, lock.Marshal()); err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	fmt.Fprintf(stdout, "pinned %d definitions of %d upstreams to %s (%d new, %d changed, %d removed, %d findings)\n",
		len(defs), len(cfg.Upstreams), path, added, changed, removed, len(findings))
	if len(findings) > 0 && cfg.ToolIntegrity.Findings == config.IntegrityBlock {
		fmt.Fprintf(stdout, "note: tool_integrity.findings is block: the definitions with findings stay quarantined\n")
	}
	return nil
}

// readOldLock reads the lockfile being replaced; none is an empty one.
func readOldLock(path string, stderr io.Writer) (*pin.Lock, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return pin.NewLock(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("pin: read %s: %w", path, err)
	}
	lock, err := pin.Parse(data)
	if err != nil {
		// A broken lockfile is replaced, but said so: its diff is lost.
		fmt.Fprintf(stderr, "mcpgate pin: the previous lockfile does not parse (%v); it is replaced\n", err)
		return pin.NewLock(nil)
	}
	return lock, nil
}

// writeAtomic replaces path with data: a serving gateway watching the file
// sees the old lockfile or the new one, never half of one.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mcpgate-lock-*")
	if err != nil {
		return fmt.Errorf("write lockfile: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write lockfile: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write lockfile: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write lockfile: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write lockfile: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write lockfile: %w", err)
	}
	return nil
}

// checkLockfile reports, for `mcpgate check`, the tool lockfile's state and
// the poisoned descriptions among the pinned definitions.
func checkLockfile(r *checkReport, cfg *config.Config) {
	const key = "tool_integrity.lockfile"
	ti := cfg.ToolIntegrity
	mode := ti.EffectiveMode()
	if mode == config.IntegrityOff {
		if len(cfg.Upstreams) > 0 {
			r.add(severityWarning, "tool_integrity", "no lockfile (%s): a changed tool description or schema reaches clients; mcpgate pin writes it", ti.Lockfile)
		}
		return
	}
	data, err := os.ReadFile(ti.Lockfile)
	if errors.Is(err, fs.ErrNotExist) && mode == config.IntegrityWarn {
		r.add(severityWarning, "tool_integrity.mode", "warn and no lockfile yet: every definition will be reported as new")
		return
	}
	if err != nil {
		r.add(severityError, key, "%v (mcpgate pin writes it)", err)
		return
	}
	lock, err := pin.Parse(data)
	if err != nil {
		r.add(severityError, key, "%s: %v", ti.Lockfile, err)
		return
	}
	entries := lock.Entries()
	defs := make([]pin.Definition, 0, len(entries))
	for _, e := range entries {
		if _, ok := cfg.Upstreams[e.Upstream]; !ok {
			r.add(severityWarning, key, "pins %s %s of upstream %q, which the config does not have", e.Kind, e.Name, e.Upstream)
		}
		defs = append(defs, pin.Definition{Upstream: e.Upstream, Kind: e.Kind, Name: e.Name, Raw: e.Definition})
	}
	for _, f := range pin.Findings(defs) {
		what := "reported"
		if ti.Findings == config.IntegrityBlock {
			what = "quarantined"
		}
		r.add(severityWarning, "upstreams."+f.Upstream, "%s %s: %s (%s): %s", f.Kind, f.Name, f.Rule, what, f.Detail)
	}
	r.add(severityInfo, key, "%s: %d definitions pinned (mode %s)", ti.Lockfile, len(entries), mode)
}
