package upstream

// UpstreamOf names the upstream that serves a tool or prompt ("tool",
// "prompt") or a resource URI ("resource") by the name a client uses, as
// configured (never as the upstream calls itself); "" if none does. The
// audit log records it.
func (c *Catalog) UpstreamOf(kind, name string) string {
	var u *Upstream
	switch kind {
	case "tool", "prompt":
		c.mu.Lock()
		items := c.tools
		if kind == "prompt" {
			items = c.prompts
		}
		if e, ok := items[name]; ok {
			u = e.u
		}
		c.mu.Unlock()
	case "resource":
		u, _ = c.resolveResource(name)
	}
	if u == nil {
		return ""
	}
	return u.spec.Name
}

// Up reports, per configured upstream, whether its catalog connection is up
// now: the connection that lists its tools (and, when shared, serves its
// calls). An upstream that starts on demand and has not been used yet is
// not up.
func (c *Catalog) Up() map[string]bool {
	result := make(map[string]bool, len(c.upstreams))
	for _, u := range c.upstreams {
		u.mu.Lock()
		in := u.catalogInstance()
		u.mu.Unlock()
		if in == nil {
			result[u.spec.Name] = false
			continue
		}
		in.mu.Lock()
		result[u.spec.Name] = in.state == up
		in.mu.Unlock()
	}
	return result
}
