//go:build linux

package sandbox

import "golang.org/x/sys/unix"

// nativeAuditArch is the seccomp_data.arch of syscalls entered through the
// 64-bit ABI. A 64-bit arm64 task cannot switch to AArch32 on its own, but
// the check costs one instruction and keeps the filter shape the same.
const nativeAuditArch = unix.AUDIT_ARCH_AARCH64

// x32SyscallBit is zero: arm64 has no x32-style ABI sharing the arch value.
const x32SyscallBit = 0

// archDeniedSyscalls are the denied syscalls that exist only on arm64: none
// of the amd64-only legacy calls (iopl, uselib, _sysctl, ...) exist here.
var archDeniedSyscalls = []deniedSyscall{}
