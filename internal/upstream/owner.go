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
