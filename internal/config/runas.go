package config

import (
	"regexp"
	"strings"
)

// accountPattern is a user or group name as useradd accepts it, or a
// numeric id.
var accountPattern = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}\$?$|^[0-9]{1,10}$`)

// validateRunAs checks run_as's shape; whether the user exists is for the
// machine that serves (mcpgate check reports it).
func (c *Config) validateRunAs(add addFunc) {
	if c.RunAs == "" {
		return
	}
	user, group, hasGroup := strings.Cut(c.RunAs, ":")
	switch {
	case !accountPattern.MatchString(user) || (hasGroup && !accountPattern.MatchString(group)):
		add("run_as", "%q is not USER or USER:GROUP (names or numeric ids)", c.RunAs)
	case user == "root" || strings.TrimLeft(user, "0") == "" || (hasGroup && (group == "root" || strings.TrimLeft(group, "0") == "")):
		add("run_as", "%q is root: name the unprivileged user the gateway should become", c.RunAs)
	}
}
