//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockAuditLog takes an exclusive lock on the audit log file (creating it
// if need be) for as long as this process writes it, so that a second
// `mcpgate run` on the same file is refused instead of breaking its chain.
// The lock is advisory: it is between mcpgate run processes.
func lockAuditLog(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("audit log %s is in use by another mcpgate run: give each run its own --name (or its own audit.path)", path)
		}
		return nil, fmt.Errorf("lock audit log %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
