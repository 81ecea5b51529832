/*
 * follow LOG STOP: copies the file LOG to stdout as it grows, from its
 * first byte, until the file STOP exists and LOG has been read to its end.
 *
 * The dom0 /init runs one per guest job: LOG is the guest's console log
 * that xenconsoled writes (every byte the guest puts into its console
 * ring, unchanged), and /init creates STOP once the domain is gone or has
 * crashed.  LOG may not exist yet when this starts.  If the last byte
 * copied was not a newline, one is added, so that the end marker /init
 * prints next starts a line of its own.
 *
 * At the end of the file it sleeps until inotify says that something in
 * LOG's or STOP's directory changed (or 1 s has passed, in case an event
 * was missed), so that a quiet guest costs dom0 nothing: polling every
 * 10 ms took about 5% of the emulated CPU.  Without inotify it polls every
 * 10 ms.  Built without a C library (linux x86_64 system calls), so it
 * needs nothing in the initramfs; build.sh compiles it with
 * -ffreestanding -nostdlib -static.
 */

typedef unsigned long size_t;
typedef long ssize_t;

#define SYS_read	0
#define SYS_write	1
#define SYS_open	2
#define SYS_nanosleep	35
#define SYS_poll	7
#define SYS_access	21
#define SYS_exit_group	231
#define SYS_inotify_add_watch	254
#define SYS_inotify_init1	294

#define O_RDONLY	0
#define O_NONBLOCK	04000
#define EINTR		4
#define EAGAIN		11
#define POLLIN		1

/* inotify(7): a file in the watched directory was created, written,
 * moved in or had its attributes changed (touch). */
#define IN_MODIFY	0x002
#define IN_ATTRIB	0x004
#define IN_MOVED_TO	0x080
#define IN_CREATE	0x100

static long syscall3(long nr, long a1, long a2, long a3)
{
	long ret;

	__asm__ __volatile__("syscall"
			     : "=a"(ret)
			     : "a"(nr), "D"(a1), "S"(a2), "d"(a3)
			     : "rcx", "r11", "memory");
	return ret;
}

struct timespec {
	long tv_sec;
	long tv_nsec;
};

static void nap(void)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	syscall3(SYS_nanosleep, (long)&ts, 0, 0);
}

struct pollfd {
	int fd;
	short events;
	short revents;
};

/* The inotify descriptor that wakes us, or -1: then we poll. */
static int changes = -1;

/* Watches the directory that holds PATH. */
static void watch_dir_of(const char *path)
{
	static char dir[4096];
	size_t len = 0, slash = 0;

	while (path[len] != 0 && len < sizeof(dir) - 1) {
		dir[len] = path[len];
		if (path[len] == '/')
			slash = len;
		len++;
	}
	if (path[len] != 0)
		return;
	/* "/x" is in "/", "x" in ".". */
	if (slash == 0 && path[0] == '/')
		slash = 1;
	if (slash == 0) {
		dir[0] = '.';
		slash = 1;
	}
	dir[slash] = 0;
	if (syscall3(SYS_inotify_add_watch, changes, (long)dir,
		     IN_MODIFY | IN_ATTRIB | IN_MOVED_TO | IN_CREATE) < 0)
		changes = -1;
}

static void watch(const char *log, const char *stop)
{
	changes = (int)syscall3(SYS_inotify_init1, O_NONBLOCK, 0, 0);
	if (changes < 0)
		return;
	watch_dir_of(log);
	if (changes >= 0)
		watch_dir_of(stop);
}

/* Waits for a change in the watched directories, at most 1 s, and takes
 * the events that came (only their coming matters). */
static void wait_for_change(void)
{
	static char events[4096];
	struct pollfd p = { changes, POLLIN, 0 };

	if (changes < 0) {
		nap();
		return;
	}
	syscall3(SYS_poll, (long)&p, 1, 1000);
	while (syscall3(SYS_read, changes, (long)events, sizeof(events)) > 0)
		;
}

static int exists(const char *path)
{
	return syscall3(SYS_access, (long)path, 0, 0) == 0;
}

/* Writes all of buf to stdout; returns -1 if stdout fails for good. */
static int write_all(const char *buf, size_t len)
{
	while (len > 0) {
		long n = syscall3(SYS_write, 1, (long)buf, (long)len);

		if (n == -EINTR || n == -EAGAIN) {
			nap();
			continue;
		}
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void quit(int status)
{
	syscall3(SYS_exit_group, status, 0, 0);
	for (;;)
		;
}

static int follow(const char *log, const char *stop)
{
	static char buf[65536];
	char last = '\n';
	int fd;

	/* Watched before the first look, so that no change after it is
	 * missed.  The log appears when xenconsoled first sees the domain. */
	watch(log, stop);
	while ((fd = (int)syscall3(SYS_open, (long)log, O_RDONLY, 0)) < 0) {
		if (exists(stop))
			return 0;
		wait_for_change();
	}

	for (;;) {
		/* Decided before reading, so that nothing written before STOP
		 * appeared can be left behind. */
		int stopping = exists(stop);
		long n = syscall3(SYS_read, fd, (long)buf, sizeof(buf));

		if (n > 0) {
			if (write_all(buf, (size_t)n) != 0)
				return 1;
			last = buf[n - 1];
			continue;
		}
		if (n < 0 && n != -EINTR && n != -EAGAIN)
			return 1;
		if (stopping)
			break;
		wait_for_change();
	}

	if (last != '\n' && write_all("\n", 1) != 0)
		return 1;
	return 0;
}

void follow_main(long argc, char **argv)
{
	if (argc != 3) {
		static const char usage[] = "usage: follow LOG STOP\n";

		syscall3(SYS_write, 2, (long)usage, sizeof(usage) - 1);
		quit(2);
	}
	quit(follow(argv[1], argv[2]));
}

/* The kernel starts us with argc at (%rsp) and argv just above it. */
__asm__(".globl _start\n"
	"_start:\n"
	"	movq (%rsp), %rdi\n"
	"	leaq 8(%rsp), %rsi\n"
	"	andq $-16, %rsp\n"
	"	call follow_main\n"
	"	hlt\n");
