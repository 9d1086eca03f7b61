package int80

// Syscall performs i386 system call nr through INT $0x80: eax=nr, ebx=a1,
// ecx=a2, edx=a3. It returns the kernel's result register (a negative errno
// on failure). Pointer arguments must fit in 32 bits, so in practice only
// calls without pointers are usable.
func Syscall(nr, a1, a2, a3 uintptr) (r uintptr)
