package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxConfigBytes bounds a config file; a larger one is surely a mistake.
const maxConfigBytes = 1 << 20

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Source is the file, Line the 1-based line (0 if unknown).
	Source string
	Line   int
	// Key is the dotted path of the key the problem is about ("listen.address").
	Key     string
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Source != "" {
		b.WriteString(p.Source)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		fmt.Fprintf(&b, "%s: ", p.Key)
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found; it is an error when non-empty.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads, strictly decodes, defaults and validates the config at path.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// LoadPartial reads, strictly decodes and defaults the config at path, and
// makes its relative paths absolute, but does not validate it: for a caller
// that completes the config first (`mcpgate run` adds its one upstream) and
// then calls Validate.
func LoadPartial(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	cfg, _, err := decode(path, data)
	if err != nil {
		return nil, err
	}
	cfg.Source = path
	cfg.ApplyDefaults()
	cfg.resolvePaths(filepath.Dir(path))
	return cfg, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > maxConfigBytes {
		return nil, Problems{{Source: path, Message: fmt.Sprintf("file is larger than %d bytes", maxConfigBytes)}}
	}
	return data, nil
}

// Parse strictly decodes YAML named source, applies defaults and validates.
// The error, if any, is Problems listing everything found.
func Parse(source string, data []byte) (*Config, error) {
	cfg, lines, err := decode(source, data)
	if err != nil {
		return nil, err
	}
	cfg.ApplyDefaults()
	cfg.resolvePaths(filepath.Dir(source))
	if ps := cfg.Validate(); len(ps) > 0 {
		for i := range ps {
			ps[i].Source = source
			ps[i].Line = lineOf(lines, ps[i].Key)
		}
		return nil, ps
	}
	return cfg, nil
}

// resolvePaths makes relative file paths relative to dir, the config file's
// directory, so a config means the same files whatever the working directory.
// Upstreams' paths are resolved too (see Upstream.resolvePaths).
func (c *Config) resolvePaths(dir string) {
	paths := []*string{&c.Audit.Path, &c.Audit.SigningKey, &c.Audit.CheckpointCopy}
	if t := c.Listen.TLS; t != nil {
		paths = append(paths, &t.Cert, &t.Key, &t.ClientCA)
	}
	// The lockfile lives beside the config by default, like go.sum beside
	// go.mod; the embedded default has none.
	if c.ToolIntegrity.Lockfile == "" {
		c.ToolIntegrity.Lockfile = DefaultLockfile
	}
	paths = append(paths, &c.ToolIntegrity.Lockfile)
	for _, p := range paths {
		absIn(dir, p)
	}
	c.Auth.Introspection.resolvePaths(dir)
	c.Alerts.resolvePaths(dir)
	c.Tracing.resolvePaths(dir)
	for name, u := range c.Upstreams {
		u.resolvePaths(dir)
		c.Upstreams[name] = u
	}
}

// absIn makes *p, if relative, relative to dir.
func absIn(dir string, p *string) {
	if *p != "" && !filepath.IsAbs(*p) {
		*p = filepath.Join(dir, *p)
	}
}

// lineOf finds the line of a key path, or of its nearest ancestor present in
// the file (a problem with a defaulted key is about its section).
func lineOf(lines map[string]int, key string) int {
	for key != "" {
		if l, ok := lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

func decode(source string, data []byte) (*Config, map[string]int, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, Problems{{Source: source, Message: "config is empty"}}
		}
		return nil, nil, Problems{{Source: source, Message: yamlMessage(err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, Problems{{Source: source, Message: "config holds more than one YAML document"}}
	}
	// Our own walk names every unknown key with its path and line at once;
	// yaml's KnownFields below stays as a second guard.
	w := &walker{lines: map[string]int{}}
	if ps := w.walk(&root, reflect.TypeOf(Config{}), ""); len(ps) > 0 {
		for i := range ps {
			ps[i].Source = source
		}
		return nil, nil, ps
	}
	cfg := &Config{Source: source}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(cfg); err != nil {
		return nil, nil, Problems{{Source: source, Message: yamlMessage(err)}}
	}
	return cfg, w.lines, nil
}

func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// walker walks a YAML node against the Go type it decodes into, reports
// every mapping key that has no field, and records the line of every key.
type walker struct {
	lines map[string]int
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) Problems {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		var ps Problems
		for _, c := range n.Content {
			ps = append(ps, w.walk(c, t, path)...)
		}
		return ps
	case yaml.AliasNode:
		return Problems{{Line: n.Line, Key: path, Message: "YAML aliases are not allowed in mcpgate config"}}
	case yaml.MappingNode:
		return w.mapping(n, t, path)
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice {
			return nil // a type error, reported by the decoder
		}
		var ps Problems
		for i, c := range n.Content {
			ps = append(ps, w.item(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return ps
	}
	return nil
}

func (w *walker) item(n *yaml.Node, t reflect.Type, path string) Problems {
	w.lines[path] = n.Line
	return w.walk(n, t, path)
}

func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string) Problems {
	var ps Problems
	switch t.Kind() {
	case reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				ps = append(ps, Problem{Line: k.Line, Key: path, Message: "YAML merge keys are not allowed in mcpgate config"})
				continue
			}
			w.lines[join(path, k.Value)] = k.Line
			ps = append(ps, w.walk(v, t.Elem(), join(path, k.Value))...)
		}
	case reflect.Struct:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				msg := "unknown key"
				if s := suggest(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				ps = append(ps, Problem{Line: k.Line, Key: join(path, k.Value), Message: msg})
				continue
			}
			w.lines[join(path, k.Value)] = k.Line
			ps = append(ps, w.walk(v, ft, join(path, k.Value))...)
		}
	}
	return ps
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps a struct's YAML key names to field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

// suggest returns the known key closest to a misspelt one, if close enough.
func suggest(key string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	best, bestDist := "", 3
	for _, name := range names {
		if len(key) >= 3 && strings.HasPrefix(name, key) {
			return name
		}
		if d := editDistance(key, name); d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
