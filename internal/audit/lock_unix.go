//go:build unix

package audit

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive lock on the open log for as long as it stays
// open: the hash chain has one writer, and a second mcpgate appending to
// the same file would break it (each would chain to its own idea of the
// last record). The lock is advisory, between mcpgate processes.
func lockFile(f *os.File, path string) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s is in use by another mcpgate (each gateway needs its own audit.path; each mcpgate run its own --name)", ErrUnavailable, path)
		}
		return fmt.Errorf("%w: lock %s: %v", ErrUnavailable, path, err)
	}
	return nil
}
