package config

import (
	"strings"
	"testing"
)

func TestRunAs(t *testing.T) {
	for _, tc := range []struct {
		runAs, want string // want: "" accepted, else in the error
	}{
		{"mcpgate", ""},
		{"mcpgate:mcpgate", ""},
		{"65534", ""},
		{"65534:65534", ""},
		{"svc_mcp-gw", ""},
		{"root", "is root"},
		{"0", "is root"},
		{"000", "is root"},
		{"mcpgate:root", "is root"},
		{"mcpgate:0", "is root"},
		{"Mcpgate", "is not USER or USER:GROUP"},
		{"mcpgate:", "is not USER or USER:GROUP"},
		{":mcpgate", "is not USER or USER:GROUP"},
		{"a:b:c", "is not USER or USER:GROUP"},
		{"mcp gate", "is not USER or USER:GROUP"},
		{"../etc", "is not USER or USER:GROUP"},
	} {
		t.Run(tc.runAs, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte("run_as: \""+tc.runAs+"\"\n"+tail()))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("run_as %q: %v", tc.runAs, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "run_as: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run_as %q: error %v, want one naming run_as and containing %q", tc.runAs, err, tc.want)
			}
		})
	}
}
