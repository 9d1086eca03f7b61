package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
)

// enterThread moves the calling OS thread, which the caller holds locked,
// into the group, so that a child it forks is born inside. Only cgroup v1
// moves a thread alone ("tasks"); writing "0" moves the writer itself,
// which the kernel does without the global lock (and RCU grace period,
// several milliseconds) that moving a running multi-threaded process takes.
func (c *cgroup) enterThread() error {
	if c.version != 1 {
		return errors.New("enter cgroup: only cgroup v1 moves a thread alone")
	}
	for i, dir := range c.dirs {
		if err := writeCgroupFile(dir, "tasks", "0"); err != nil {
			for _, entered := range c.dirs[:i] {
				_ = writeCgroupFile(filepath.Dir(entered), "tasks", "0")
			}
			return fmt.Errorf("enter cgroup: %w", err)
		}
	}
	return nil
}

// leaveThread moves the calling thread back to the groups it came from:
// the parents of the group's directories, the gateway's own.
func (c *cgroup) leaveThread() error {
	var errs []error
	for _, dir := range c.dirs {
		if err := writeCgroupFile(filepath.Dir(dir), "tasks", "0"); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("leave cgroup: %w", err)
	}
	return nil
}
