package config

import (
	"strings"
	"testing"
)

func TestAdminValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"non-loopback refused", func(c *Config) { c.Admin.Address = "10.0.0.1:9464" }, "admin.address: the admin endpoints"},
		{"non-loopback by opt-in", func(c *Config) { c.Admin.Address, c.Admin.InsecureNonLoopback = "10.0.0.1:9464", true }, ""},
		{"empty host", func(c *Config) { c.Admin.Address = ":9464" }, "admin.address: an empty host"},
		{"same as listen", func(c *Config) { c.Admin.Address = c.Listen.Address }, "admin.address: is the same as listen.address"},
		{"disabled", func(c *Config) { c.Admin.Address, c.Admin.Disabled = "10.0.0.1:9464", true }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Auth.InsecureDisableAuth = true
			tc.edit(c)
			got := c.Validate().Error()
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
	if c := Default(); c.Admin.Address != DefaultAdminAddress {
		t.Fatalf("default admin address %q", c.Admin.Address)
	}
}
