//go:build linux

package sandbox

import "golang.org/x/sys/unix"

// nativeAuditArch is the seccomp_data.arch of syscalls entered through the
// 64-bit ABI; int 0x80 (i386) and x32 entries must not reach the nr checks.
const nativeAuditArch = unix.AUDIT_ARCH_X86_64

// x32SyscallBit marks x32 syscalls, which report AUDIT_ARCH_X86_64 too.
const x32SyscallBit = 0x40000000

// archDeniedSyscalls are the denied syscalls that exist only on amd64.
var archDeniedSyscalls = []deniedSyscall{
	{"iopl", unix.SYS_IOPL},
	{"ioperm", unix.SYS_IOPERM},
	{"create_module", unix.SYS_CREATE_MODULE},
	{"get_kernel_syms", unix.SYS_GET_KERNEL_SYMS},
	{"query_module", unix.SYS_QUERY_MODULE},
	{"uselib", unix.SYS_USELIB},
	{"ustat", unix.SYS_USTAT},
	{"sysfs", unix.SYS_SYSFS},
	{"_sysctl", unix.SYS__SYSCTL},
}
