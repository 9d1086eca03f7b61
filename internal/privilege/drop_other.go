//go:build !linux

package privilege

import "errors"

// Drop is implemented on Linux only.
func Drop(Target) error { return errors.New("drop privileges: supported on Linux only") }
