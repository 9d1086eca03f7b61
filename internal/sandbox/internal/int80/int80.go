// Package int80 makes 32-bit (i386 ABI) system calls from a 64-bit amd64
// process through INT $0x80. It exists only so that tests can prove the
// sandbox's seccomp filter kills such calls: a filter that checks syscall
// numbers without checking the ABI is bypassed this way, because i386
// numbers differ from x86_64 ones.
package int80
