package sandbox

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadStatusAfterInitExited: an init that reports and exits without
// reading what the gateway sent it (a probe does) leaves the gateway's
// socket flagged ECONNRESET, which the kernel reports before the queued
// status. readStatus must still read the status. This was a CI failure
// under load: "read status: connection reset by peer" at the probe.
func TestReadStatusAfterInitExited(t *testing.T) {
	for _, tc := range []struct{ status, want string }{
		{"ok", "ok"},
		{"error: mount tmpfs: permission denied", "error: mount tmpfs: permission denied"},
	} {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		gateway := os.NewFile(uintptr(pair[0]), "gateway end")
		defer gateway.Close()
		// The init's side: report, leave the gateway's "go" unread, exit.
		if err := unix.Sendmsg(pair[0], []byte(goMessage), nil, nil, 0); err != nil {
			t.Fatal(err)
		}
		// One owner per descriptor: the os.File closes it (a second close by
		// number, or by a finalizer, would close whatever reused the number).
		initEnd := os.NewFile(uintptr(pair[1]), "init end")
		if err := sendStatus(initEnd, tc.status, -1); err != nil {
			t.Fatal(err)
		}
		initEnd.Close()

		got, l, err := readStatus(context.Background(), gateway)
		if err != nil || got != tc.want || l != nil {
			t.Errorf("readStatus = %q, %v, %v; want %q", got, l, err, tc.want)
		}
	}
}
