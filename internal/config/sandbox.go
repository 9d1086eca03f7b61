package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Sandbox configures one stdio upstream's isolation. Every field is
// optional: the zero Sandbox is full isolation with no grant, no network and
// the default limits.
type Sandbox struct {
	// Read lists host paths the server may read and execute; Write, paths it
	// may also write. They appear at the same paths inside. Relative paths
	// are relative to the config file's directory.
	Read  []string `yaml:"read"`
	Write []string `yaml:"write"`
	// Network is none (the default: loopback inside the sandbox only) or
	// {allow: [host:port, ...]}: egress through mcpgate's allowlisting proxy.
	Network SandboxNetwork `yaml:"network"`
	// Memory is the memory limit, swap included ("512MiB", "2GiB",
	// "unlimited"); empty means DefaultSandboxMemory.
	Memory string `yaml:"memory"`
	// Pids caps processes and threads ("256", "unlimited"); empty means
	// DefaultSandboxPids.
	Pids string `yaml:"pids"`
	// CPU is a quota in cores (1.5 is one and a half); 0 means none.
	CPU float64 `yaml:"cpu"`
	// NoFile caps open files; 0 means DefaultSandboxNoFile.
	NoFile uint64 `yaml:"nofile"`
	// InsecureIsolation accepts a weaker isolation where the host cannot
	// isolate fully: no-userns (a root gateway on a host without user
	// namespaces) or landlock-only (no namespaces at all). The strongest
	// level the host offers is used; anything below full is warned about
	// at every start and shown by `mcpgate check`.
	InsecureIsolation string `yaml:"insecure_isolation"`
}

// Weaker isolation levels InsecureIsolation accepts.
const (
	IsolationNoUserNS     = "no-userns"
	IsolationLandlockOnly = "landlock-only"
)

// Sandbox defaults, as config text.
const (
	DefaultSandboxMemory = "1GiB"
	DefaultSandboxPids   = "256"
	DefaultSandboxNoFile = 1024
	// Unlimited turns a sandbox's memory or pids limit off.
	Unlimited = "unlimited"
)

// SandboxNetwork is a sandbox's network egress.
type SandboxNetwork struct {
	// Allow lists the host:port destinations the server may reach through
	// the proxy; empty means no network.
	Allow []string `yaml:"allow"`
}

// UnmarshalYAML accepts "none" or a mapping {allow: [...]}; unknown keys in
// the mapping are reported by the config's strict walker.
func (n *SandboxNetwork) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind == yaml.ScalarNode {
		if node.Value != "none" {
			return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: network must be none or {allow: [host:port, ...]}", node.Line)}}
		}
		*n = SandboxNetwork{}
		return nil
	}
	type plain SandboxNetwork
	return node.Decode((*plain)(n))
}

func (s *Sandbox) resolvePaths(dir string) {
	for _, list := range [][]string{s.Read, s.Write} {
		for i := range list {
			absIn(dir, &list[i])
		}
	}
}

// MemoryBytes is the memory limit in bytes, -1 for unlimited.
func (s *Sandbox) MemoryBytes() int64 {
	v := DefaultSandboxMemory
	if s != nil && s.Memory != "" {
		v = s.Memory
	}
	n, _ := parseLimit(v, true)
	return n
}

// PidsLimit is the pids limit, -1 for unlimited.
func (s *Sandbox) PidsLimit() int64 {
	v := DefaultSandboxPids
	if s != nil && s.Pids != "" {
		v = s.Pids
	}
	n, _ := parseLimit(v, false)
	return n
}

// parseLimit reads "unlimited" (-1), a count, or with sizes a number with a
// KiB/MiB/GiB/TiB suffix.
func parseLimit(v string, size bool) (int64, error) {
	if v == Unlimited {
		return -1, nil
	}
	mult := int64(1)
	if size {
		for _, u := range []struct {
			suffix string
			mult   int64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}} {
			if strings.HasSuffix(v, u.suffix) {
				v, mult = strings.TrimSuffix(v, u.suffix), u.mult
				break
			}
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("not a positive number")
	}
	return n * mult, nil
}

// validate reports the problems of a stdio upstream's sandbox under key.
func (s *Sandbox) validate(key string, add addFunc) {
	if s.Memory != "" {
		if n, err := parseLimit(s.Memory, true); err != nil {
			add(key+".memory", "%q must be a size like 512MiB or 2GiB, or %s", s.Memory, Unlimited)
		} else if n >= 0 && n < 16<<20 {
			add(key+".memory", "%q is below 16MiB, too little for any MCP server", s.Memory)
		}
	}
	if s.Pids != "" {
		if n, err := parseLimit(s.Pids, false); err != nil {
			add(key+".pids", "%q must be a positive number or %s", s.Pids, Unlimited)
		} else if n >= 0 && n < 8 {
			add(key+".pids", "%q is below 8: node alone runs several threads", s.Pids)
		}
	}
	switch s.InsecureIsolation {
	case "", IsolationNoUserNS, IsolationLandlockOnly:
	default:
		add(key+".insecure_isolation", "%q must be %s or %s (or insecure_no_sandbox: true on the upstream for none)", s.InsecureIsolation, IsolationNoUserNS, IsolationLandlockOnly)
	}
	if s.CPU < 0 || s.CPU > 1024 {
		add(key+".cpu", "must be a number of cores from 0 (no quota) to 1024")
	}
	if s.NoFile != 0 && (s.NoFile < 16 || s.NoFile > 1<<20) {
		add(key+".nofile", "must be from 16 to 1048576")
	}
	type path struct {
		key, p string
		write  bool
	}
	var all []path
	for i, p := range s.Read {
		all = append(all, path{fmt.Sprintf("%s.read[%d]", key, i), p, false})
	}
	for i, p := range s.Write {
		all = append(all, path{fmt.Sprintf("%s.write[%d]", key, i), p, true})
	}
	for _, p := range all {
		if p.p == "" || !filepath.IsAbs(p.p) {
			add(p.key, "%q must be a path", p.p)
			continue
		}
		if _, err := os.Stat(p.p); err != nil {
			add(p.key, "cannot use: %v", err)
		}
	}
	// A grant inside a write grant could be swapped for a symlink by the
	// server, and the next start would bind whatever it points to.
	for _, w := range all {
		if !w.write {
			continue
		}
		for _, p := range all {
			if p == w {
				continue
			}
			if inside(filepath.Clean(p.p), filepath.Clean(w.p)) {
				add(p.key, "%s is inside the write grant %s: the server could replace it; grant one path or the other", p.p, w.p)
			}
		}
	}
	for i, a := range s.Network.Allow {
		if err := checkHostPort(a); err != nil {
			add(fmt.Sprintf("%s.network.allow[%d]", key, i), "%v", err)
		}
	}
}

// inside reports whether p is dir or below it.
func inside(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q must be host:port", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: the port must be 1-65535", a)
	}
	if host == "" || strings.ContainsAny(host, "*/ ") {
		return fmt.Errorf("%q: the host must be a DNS name or an IP address (no wildcards)", a)
	}
	return nil
}
