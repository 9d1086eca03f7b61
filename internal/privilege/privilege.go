// Package privilege drops the gateway's root privileges for good once it has
// bound its ports: `run_as` in the config names the user it becomes.
//
// The drop is all or nothing. Every thread of the process changes its
// credentials (glibc's setxid broadcast, or the runtime's all-threads
// syscall without cgo), and the result is verified per thread from
// /proc/self/task/*/status before the gateway goes on: a thread left with a
// root uid or a capability stops the start.
package privilege

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// Target is the identity the process drops to.
type Target struct {
	// Name is what the config said (a user name or a numeric uid), for logs.
	Name string
	UID  int
	GID  int
	// Groups are the supplementary groups: the user's, from the group
	// database, or only GID when a group was named explicitly.
	Groups []int
}

// ErrNotRoot is returned by Drop when the process has no privileges to drop
// to another user with.
var ErrNotRoot = errors.New("only root can switch to another user")

// Lookup resolves a run_as value: "user" (name or numeric uid) takes the
// user's primary group and supplementary groups; "user:group" takes that
// group alone. Root (uid 0) and the root group are refused: dropping to them
// is no drop.
func Lookup(spec string) (Target, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return Target{}, fmt.Errorf("look up run_as %q: want USER or USER:GROUP", spec)
	}
	u, err := lookupUser(userPart)
	if err != nil {
		return Target{}, fmt.Errorf("look up run_as user %q: %w", userPart, err)
	}
	t := Target{Name: spec}
	if t.UID, err = strconv.Atoi(u.Uid); err != nil {
		return Target{}, fmt.Errorf("look up run_as user %q: uid %q is not a number", userPart, u.Uid)
	}
	if hasGroup {
		g, err := lookupGroup(groupPart)
		if err != nil {
			return Target{}, fmt.Errorf("look up run_as group %q: %w", groupPart, err)
		}
		if t.GID, err = strconv.Atoi(g.Gid); err != nil {
			return Target{}, fmt.Errorf("look up run_as group %q: gid %q is not a number", groupPart, g.Gid)
		}
		t.Groups = []int{t.GID}
	} else {
		if t.GID, err = strconv.Atoi(u.Gid); err != nil {
			return Target{}, fmt.Errorf("look up run_as user %q: gid %q is not a number", userPart, u.Gid)
		}
		ids, err := u.GroupIds()
		if err != nil {
			return Target{}, fmt.Errorf("look up run_as user %q: groups: %w", userPart, err)
		}
		for _, id := range ids {
			n, err := strconv.Atoi(id)
			if err != nil {
				return Target{}, fmt.Errorf("look up run_as user %q: gid %q is not a number", userPart, id)
			}
			t.Groups = append(t.Groups, n)
		}
		if len(t.Groups) == 0 {
			t.Groups = []int{t.GID}
		}
	}
	if t.UID == 0 || t.GID == 0 {
		return Target{}, fmt.Errorf("look up run_as %q: uid %d gid %d: dropping to root is no drop", spec, t.UID, t.GID)
	}
	for _, g := range t.Groups {
		if g == 0 {
			return Target{}, fmt.Errorf("look up run_as %q: user %s is in the root group (gid 0); name a group explicitly (USER:GROUP)", spec, userPart)
		}
	}
	return t, nil
}

// lookupUser accepts a name or a numeric uid.
func lookupUser(s string) (*user.User, error) {
	if _, err := strconv.Atoi(s); err == nil {
		return user.LookupId(s)
	}
	return user.Lookup(s)
}

// lookupGroup accepts a name or a numeric gid.
func lookupGroup(s string) (*user.Group, error) {
	if _, err := strconv.Atoi(s); err == nil {
		return user.LookupGroupId(s)
	}
	return user.LookupGroup(s)
}
