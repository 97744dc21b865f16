/*
 * sigign: run a program with signals 32 and 33 ignored, as some parents
 * (a CI runner among them) leave them:  sigign PROGRAM [ARG ...]
 *
 * They are the C library's own (thread cancellation, setxid), and its
 * sigaction() refuses them, so the kernel call is made directly.  An
 * all-zero kernel sigaction but for the handler, SIG_IGN (1), is valid
 * on every Linux architecture whatever the order of its fields, as long
 * as the handler comes first, which it does but on MIPS.
 */
#include <sys/syscall.h>

#include <err.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	unsigned long	ksa[8];
	int		sig;

	if (argc < 2)
		errx(2, "usage: sigign program [arg ...]");
	for (sig = 32; sig <= 33; sig++) {
		memset(ksa, 0, sizeof(ksa));
		ksa[0] = (unsigned long)SIG_IGN;
		if (syscall(SYS_rt_sigaction, sig, ksa, NULL,
		    (NSIG - 1) / 8) == -1)
			err(2, "rt_sigaction %d", sig);
	}
	execvp(argv[1], argv + 1);
	err(127, "%s", argv[1]);
}
