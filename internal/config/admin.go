package config

import (
	"net"
	"strconv"
)

// Admin configures the admin listener: Prometheus metrics (/metrics),
// liveness (/healthz) and readiness (/readyz), on a listener of its own,
// separate from the MCP endpoint and without authentication.
type Admin struct {
	// Address is host:port; loopback by default. An empty value means the
	// default, like every other key: use Disabled to turn the listener off.
	Address string `yaml:"address"`
	// Disabled turns the admin listener off.
	Disabled bool `yaml:"disabled"`
	// InsecureNonLoopback allows a non-loopback Address. The admin endpoints
	// have no authentication: only a network that reaches no one else should
	// see them.
	InsecureNonLoopback bool `yaml:"insecure_non_loopback"`
}

// DefaultAdminAddress is the admin listener's default address (9464 is the
// port Prometheus exporters conventionally use for this).
const DefaultAdminAddress = "127.0.0.1:9464"

func (a *Admin) applyDefaults() {
	setDefault(&a.Address, DefaultAdminAddress)
}

func (c *Config) validateAdmin(add addFunc) {
	a := c.Admin
	if a.Disabled {
		return
	}
	host, port, err := net.SplitHostPort(a.Address)
	switch {
	case err != nil:
		add("admin.address", "must be host:port: %v", err)
		return
	case host == "":
		add("admin.address", "an empty host binds every interface; name the address to bind")
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		add("admin.address", "port %q is not a number from 0 to 65535", port)
	} else if port != "0" && a.Address == c.Listen.Address {
		add("admin.address", "is the same as listen.address; the admin listener needs an address of its own")
	}
	if !IsLoopbackAddress(a.Address) && !a.InsecureNonLoopback {
		add("admin.address", "the admin endpoints (metrics, health) have no authentication: bind a loopback address, "+
			"or set admin.insecure_non_loopback: true on a network only your monitoring reaches")
	}
}
