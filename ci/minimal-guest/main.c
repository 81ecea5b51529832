/*
 * The smallest useful PV guest: it writes one line to its console and
 * powers off.  It is the harness's smoke test and the baseline that the
 * real kernel's start-up time is measured against, so it does nothing
 * else: no trap table, no event upcalls, no shared_info mapping.
 *
 * As dom0 (start_info.flags has SIF_INITDOMAIN) it writes with console_io;
 * as a domU, console_io answers -EPERM, so it writes into the PV console
 * ring and notifies the console daemon through the ring's event channel.
 *
 * With xen.console=framed on its command line it writes the records of
 * docs/abi.md section 2, otherwise the plain line.
 *
 * Built with -DMG_TEST_MODES (the test-guest image) it also knows a few
 * command-line words for testing the harness itself; see run_test_modes().
 */
#include <stddef.h>
#include <stdint.h>

#include "xen.h"

#ifdef MG_TEST_MODES
#include "flood.h"
#endif

/* Both defined in head.S / guest.ld. */
extern char hypercall_page[4096];
extern const char VIRT_BASE[];

/* The x86_64 layout of the headers' structures. */
_Static_assert(offsetof(struct start_info, flags) == 48, "flags");
_Static_assert(offsetof(struct start_info, console) == 72, "console");
_Static_assert(offsetof(struct start_info, mfn_list) == 104, "mfn_list");
_Static_assert(offsetof(struct start_info, cmd_line) == 128, "cmd_line");
_Static_assert(sizeof(struct start_info) == 1168, "start_info");
_Static_assert(sizeof(struct xencons_interface) == 3088, "xencons_interface");

/* Keeps the compiler from moving memory accesses across this point. */
#define barrier() __asm__ __volatile__("" ::: "memory")

/*
 * Calls hypercall NR with two arguments.  The stub in the hypercall page
 * takes them in %rdi and %rsi, returns in %rax, and may clobber %rcx,
 * %r11 and the argument registers (arch-x86/xen-x86_64.h).
 */
static long hypercall2(unsigned int nr, unsigned long a1, unsigned long a2)
{
	register unsigned long rdi __asm__("rdi") = a1;
	register unsigned long rsi __asm__("rsi") = a2;
	long ret;

	__asm__ __volatile__("call *%[stub]"
			     : "=a"(ret), "+r"(rdi), "+r"(rsi)
			     : [stub] "r"(hypercall_page + nr * 32)
			     : "rcx", "r11", "rdx", "r10", "r8", "memory");
	return ret;
}

static long hypercall3(unsigned int nr, unsigned long a1, unsigned long a2,
		       unsigned long a3)
{
	register unsigned long rdi __asm__("rdi") = a1;
	register unsigned long rsi __asm__("rsi") = a2;
	register unsigned long rdx __asm__("rdx") = a3;
	long ret;

	__asm__ __volatile__("call *%[stub]"
			     : "=a"(ret), "+r"(rdi), "+r"(rsi), "+r"(rdx)
			     : [stub] "r"(hypercall_page + nr * 32)
			     : "rcx", "r11", "r10", "r8", "memory");
	return ret;
}

static void sched_yield(void)
{
	hypercall2(__HYPERVISOR_sched_op, SCHEDOP_yield, 0);
}

static void sched_shutdown(uint32_t reason)
{
	struct sched_shutdown arg = { .reason = reason };

	hypercall2(__HYPERVISOR_sched_op, SCHEDOP_shutdown,
		   (unsigned long)&arg);
}

/* Where the console goes: console_io (dom0) or the ring (domU). */
struct console {
	volatile struct xencons_interface *ring;	/* NULL as dom0 */
	uint32_t evtchn;
};

static void console_notify(const struct console *con)
{
	struct evtchn_send arg = { .port = con->evtchn };

	hypercall2(__HYPERVISOR_event_channel_op, EVTCHNOP_send,
		   (unsigned long)&arg);
}

/*
 * Finds the console ring of a domU.  start_info gives its machine frame;
 * the machine-to-phys table turns that into the pseudo-physical frame,
 * and the boot mapping covers frame N at VIRT_BASE + N * 4096 (xen.h,
 * "Start-of-day memory layout").  The p2m list is checked to agree, so a
 * wrong guess stops the guest instead of scribbling on some other page.
 */
static int console_find_ring(struct console *con, const struct start_info *si)
{
	const uint64_t *m2p = (const uint64_t *)MACH2PHYS_VIRT_START;
	const uint64_t *p2m = (const uint64_t *)si->mfn_list;
	uint64_t mfn = si->console.domU.mfn;
	uint64_t pfn = m2p[mfn];

	if (pfn >= si->nr_pages || p2m[pfn] != mfn)
		return -1;
	con->ring = (volatile struct xencons_interface *)
		((uintptr_t)VIRT_BASE + (pfn << PAGE_SHIFT));
	con->evtchn = si->console.domU.evtchn;
	return 0;
}

/*
 * Copies buf into the ring's output half, waiting (yielding the CPU) while
 * the ring is full.  The producer index is published only after the bytes
 * it covers, and x86 keeps stores in order, so a compiler barrier is all
 * the console daemon needs to see the data before the index.
 */
static void ring_write(const struct console *con, const char *buf, size_t len)
{
	volatile struct xencons_interface *r = con->ring;

	while (len > 0) {
		XENCONS_RING_IDX cons = r->out_cons;
		XENCONS_RING_IDX prod = r->out_prod;
		size_t space = sizeof(r->out) - (prod - cons);
		size_t n = len < space ? len : space;

		if (n == 0) {
			console_notify(con);
			sched_yield();
			continue;
		}
		for (size_t i = 0; i < n; i++)
			r->out[(prod + i) & (sizeof(r->out) - 1)] = buf[i];
		barrier();
		r->out_prod = prod + (XENCONS_RING_IDX)n;
		console_notify(con);
		buf += n;
		len -= n;
	}
}

/* Waits until the console daemon has taken everything from the ring. */
static void ring_flush(const struct console *con)
{
	while (con->ring->out_cons != con->ring->out_prod)
		sched_yield();
}

static void console_write(const struct console *con, const char *buf,
			  size_t len)
{
	if (con->ring != NULL)
		ring_write(con, buf, len);
	else
		hypercall3(__HYPERVISOR_console_io, CONSOLEIO_write, len,
			   (unsigned long)buf);
}

static size_t str_len(const char *s)
{
	size_t n = 0;

	while (s[n] != '\0')
		n++;
	return n;
}

static void console_puts(const struct console *con, const char *s)
{
	console_write(con, s, str_len(s));
}

/*
 * Tells whether the space-separated command line holds the exact token
 * tok.  With a prefix length (plen > 0), matches any token starting with
 * the first plen bytes of tok and returns where its value begins.
 */
static const char *cmdline_find(const char *line, const char *tok, size_t plen)
{
	size_t tlen = plen > 0 ? plen : str_len(tok);
	const char *found = NULL;

	while (*line != '\0') {
		size_t n = 0;

		while (*line == ' ')
			line++;
		while (line[n] != '\0' && line[n] != ' ')
			n++;
		if (n >= tlen && (plen > 0 || n == tlen)) {
			size_t i = 0;

			while (i < tlen && line[i] == tok[i])
				i++;
			if (i == tlen)
				found = line + tlen;	/* the last one wins */
		}
		line += n;
	}
	return found;
}

/* xen.console=framed|plain (docs/abi.md): the last such token decides. */
static int cmdline_framed(const char *line)
{
	const char *v = cmdline_find(line, "xen.console=", 12);

	return v != NULL && v[0] == 'f' && v[1] == 'r' && v[2] == 'a' &&
	       v[3] == 'm' && v[4] == 'e' && v[5] == 'd' &&
	       (v[6] == '\0' || v[6] == ' ');
}

/* Copies the command line, which Xen NUL-terminates, into a local buffer. */
static void cmdline_copy(char *dst, const struct start_info *si)
{
	size_t i;

	for (i = 0; i < MAX_GUEST_CMDLINE - 1 && si->cmd_line[i] != '\0'; i++)
		dst[i] = si->cmd_line[i];
	dst[i] = '\0';
}

/*
 * dom0 only: QEMU's isa-debug-exit device (port 0xf4) ends QEMU, where a
 * poweroff of dom0 would only halt Xen.  A 64-bit PV kernel runs in ring
 * 3, so it first asks Xen for I/O privilege.  Without the device the
 * write does nothing and the poweroff that follows halts Xen as usual.
 */
static void qemu_debug_exit(void)
{
	struct physdev_set_iopl iopl = { .iopl = 3 };

	if (hypercall2(__HYPERVISOR_physdev_op, PHYSDEVOP_set_iopl,
		       (unsigned long)&iopl) != 0)
		return;
	__asm__ __volatile__("outb %b0, %w1" : : "a"(0), "Nd"(0xf4));
}

#ifdef MG_TEST_MODES
static uint64_t parse_u64(const char *s)
{
	uint64_t v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (uint64_t)(*s++ - '0');
	return v;
}

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/*
 * Spins, yielding the CPU, until about `ticks` TSC ticks have passed.  The
 * vCPU may move to a physical CPU whose TSC reads differently, so a step
 * of more than 2^28 ticks (or backwards) between two reads is not counted.
 */
static void tsc_spin(uint64_t ticks)
{
	uint64_t elapsed = 0, prev = rdtsc();

	while (elapsed < ticks) {
		uint64_t now, step;

		sched_yield();
		now = rdtsc();
		step = now - prev;
		prev = now;
		if (step < (1ULL << 28))
			elapsed += step;
	}
}

/*
 * Test-only words (never in the minimal-guest image):
 *   mg.flood=BYTES  write flood.h's record stream of about BYTES bytes
 *   mg.ticks=N      write N lines "tick I", about 2^30 TSC ticks apart
 *   mg.crash        execute ud2; with no trap table Xen crashes the domain
 *   mg.reboot       shut down with reason reboot instead of poweroff
 */
static uint32_t run_test_modes(const struct console *con, const char *line,
			       int framed)
{
	const char *v;

	v = cmdline_find(line, "mg.flood=", 9);
	if (v != NULL) {
		char buf[FLOOD_RECORD_MAX];
		struct flood f;
		unsigned int len;

		flood_init(&f, parse_u64(v));
		while ((len = flood_next(&f, buf)) != 0)
			console_write(con, buf, len);
	}

	v = cmdline_find(line, "mg.ticks=", 9);
	if (v != NULL) {
		uint64_t n = parse_u64(v);

		for (uint64_t i = 0; i < n; i++) {
			char buf[48];
			size_t len = 0;
			uint64_t d = i, p = 1;

			if (framed) {
				buf[len++] = 0x1e;
				buf[len++] = 'O';
			}
			for (const char *s = "tick "; *s != '\0'; s++)
				buf[len++] = *s;
			while (p * 10 <= d)
				p *= 10;
			for (; p > 0; p /= 10)
				buf[len++] = (char)('0' + (d / p) % 10);
			if (framed)
				for (const char *s = "\\x0a"; *s != '\0'; s++)
					buf[len++] = *s;
			buf[len++] = '\n';
			console_write(con, buf, len);
			tsc_spin(1ULL << 30);
		}
	}

	if (cmdline_find(line, "mg.crash", 0) != NULL) {
		if (con->ring != NULL)
			ring_flush(con);
		__asm__ __volatile__("ud2");
	}

	return cmdline_find(line, "mg.reboot", 0) != NULL ? SHUTDOWN_reboot
							  : SHUTDOWN_poweroff;
}
#endif

void mg_main(const struct start_info *si)
{
	static char line[MAX_GUEST_CMDLINE];
	struct console con = { 0 };
	uint32_t reason = SHUTDOWN_poweroff;
	int framed;

	if (!(si->flags & SIF_INITDOMAIN) && console_find_ring(&con, si) != 0) {
		/* Nowhere to write: say so the only way left. */
		sched_shutdown(SHUTDOWN_crash);
		return;
	}
	cmdline_copy(line, si);
	framed = cmdline_framed(line);

	if (framed)
		console_puts(&con, "\x1eOhello from the minimal guest\\x0a\n");
	else
		console_puts(&con, "hello from the minimal guest\n");

#ifdef MG_TEST_MODES
	reason = run_test_modes(&con, line, framed);
#endif

	if (framed)
		console_puts(&con, "\x1eX0\n");

	if (con.ring != NULL)
		ring_flush(&con);
	else
		qemu_debug_exit();
	sched_shutdown(reason);
}
