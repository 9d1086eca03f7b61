//go:build !amd64

package int80

// Syscall panics: INT $0x80 exists only on amd64. It is declared so that
// callers compile on every architecture and can skip at run time.
func Syscall(nr, a1, a2, a3 uintptr) (r uintptr) {
	panic("int80: INT $0x80 exists only on amd64")
}
