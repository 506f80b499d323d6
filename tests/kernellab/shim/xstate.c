// LD_PRELOAD shim for Debian's user-mode-linux 6.1 on hosts whose XSAVE area
// is larger than UML's fixed 832-byte buffer (AVX-512/AMX): the host kernel
// refuses PTRACE_SETREGSET(NT_X86_XSTATE) unless the full area is given
// (EFAULT), so UML panics at the first context switch. We pass the full
// area: UML's part overlaid on the tracee's current state.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

long ptrace(enum __ptrace_request req, ...) {
	static long (*real)(enum __ptrace_request, pid_t, void *, void *);
	va_list ap;
	va_start(ap, req);
	pid_t pid = va_arg(ap, pid_t);
	void *addr = va_arg(ap, void *);
	void *data = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = dlsym(RTLD_NEXT, "ptrace");
	if (req == PTRACE_SETREGSET && (long)addr == NT_X86_XSTATE) {
		struct iovec *iov = data;
		static char buf[65536] __attribute__((aligned(64)));
		struct iovec full = {buf, sizeof buf};
		if (real(PTRACE_GETREGSET, pid, addr, &full) == 0 && full.iov_len > iov->iov_len) {
			memcpy(buf, iov->iov_base, iov->iov_len);
			return real(PTRACE_SETREGSET, pid, addr, &full);
		}
	}
	return real(req, pid, addr, data);
}
