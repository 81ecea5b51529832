/*
 * A fixture PV guest for the runner's boot tests (tests/boot.rs).
 *
 * It runs as dom0 only (it writes with console_io) and speaks the framed
 * console of docs/abi.md section 2 whatever its command line says.  First
 * it writes its whole command line, escaped, as one stdout record, so a
 * test can check what the guest received.  Then it does what GUEST_ACT=
 * on the command line asks:
 *
 *   (none)   exit with status 0
 *   mixed    write stderr, log lines, Xen-style text and malformed records,
 *            then exit with status 263 (the runner reports 7)
 *   crash    write a crash report (C records, frames from the frame
 *            pointers) and Xcrash, as the kernel would
 *   fault    fault for real with no trap table: Xen crashes the domain
 *   noexit   power off without an exit record
 *   abort    write Xabort and shut down as a crash
 *   hang     spin forever
 *
 * Built with -fno-omit-frame-pointer and -g, so a backtrace walks and
 * symbolizes.
 */
#include <stdint.h>

/* Hypercall numbers and commands, from xen/include/public/xen.h and
 * sched.h. */
#define HYPERVISOR_console_io	18
#define HYPERVISOR_sched_op	29
#define CONSOLEIO_write		0
#define SCHEDOP_shutdown	2
#define SHUTDOWN_poweroff	0
#define SHUTDOWN_crash		3

/* start_info.cmd_line (xen/include/public/xen.h). */
#define START_INFO_CMDLINE	128

extern char hypercall_page[4096];
char boot_stack[65536] __attribute__((aligned(16)));
void start_c(const char *start_info);

__asm__(
	".section .note.Xen, \"a\", @note\n"
	".macro xen_note type, desc:vararg\n"
	"	.balign 4\n"
	"	.long 2f - 1f, 4f - 3f, \\type\n"
	"1:	.asciz \"Xen\"\n"
	"2:	.balign 4\n"
	"3:	\\desc\n"
	"4:	.balign 4\n"
	".endm\n"
	/* elfnote.h: GUEST_OS, GUEST_VERSION, XEN_VERSION, VIRT_BASE,
	 * PADDR_OFFSET, ENTRY, HYPERCALL_PAGE, LOADER. */
	"xen_note 6, .asciz \"runner-fixture\"\n"
	"xen_note 7, .asciz \"0\"\n"
	"xen_note 5, .asciz \"xen-3.0\"\n"
	"xen_note 3, .quad 0\n"
	"xen_note 4, .quad 0\n"
	"xen_note 1, .quad _start\n"
	"xen_note 2, .quad hypercall_page\n"
	"xen_note 8, .asciz \"generic\"\n"
	".text\n"
	".globl _start\n"
	"_start:\n"
	"	lea boot_stack + 65536(%rip), %rsp\n"
	"	xor %ebp, %ebp\n"
	"	mov %rsi, %rdi\n"	/* start_info */
	"	call start_c\n"
	"1:	hlt\n"
	"	jmp 1b\n"
	".balign 4096\n"
	".globl hypercall_page\n"
	"hypercall_page:\n"
	"	.fill 4096, 1, 0\n");

static long hypercall3(int nr, uint64_t a1, uint64_t a2, uint64_t a3)
{
	register uint64_t rdi __asm__("rdi") = a1;
	register uint64_t rsi __asm__("rsi") = a2;
	register uint64_t rdx __asm__("rdx") = a3;
	long ret;

	__asm__ volatile("call *%[stub]"
			 : "=a"(ret), "+r"(rdi), "+r"(rsi), "+r"(rdx)
			 : [stub] "r"(hypercall_page + nr * 32)
			 : "rcx", "r11", "r10", "r8", "memory");
	return ret;
}

static uint64_t length(const char *s)
{
	uint64_t n = 0;

	while (s[n])
		n++;
	return n;
}

static void console_write(const char *s, uint64_t n)
{
	hypercall3(HYPERVISOR_console_io, CONSOLEIO_write, n, (uint64_t)s);
}

static void console_puts(const char *s)
{
	console_write(s, length(s));
}

static void __attribute__((noreturn)) shut_down(uint32_t reason)
{
	hypercall3(HYPERVISOR_sched_op, SCHEDOP_shutdown, (uint64_t)&reason, 0);
	for (;;)
		;
}

static int contains(const char *haystack, const char *needle)
{
	for (; *haystack; haystack++) {
		uint64_t i = 0;

		while (needle[i] && haystack[i] == needle[i])
			i++;
		if (!needle[i])
			return 1;
	}
	return 0;
}

/* One record is built here and written with one console write. */
static char record[2048];
static uint64_t record_len;

static void put(char c)
{
	if (record_len < sizeof(record))
		record[record_len++] = c;
}

static void put_str(const char *s)
{
	while (*s)
		put(*s++);
}

static void put_hex(uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	int shift = 60;

	put_str("0x");
	while (shift > 0 && !((v >> shift) & 0xf))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		put(digits[(v >> shift) & 0xf]);
}

/* Escapes as docs/abi.md says: \\ for \, \xHH for control bytes. */
static void put_escaped(const char *s, uint64_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (uint64_t i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c == '\\') {
			put('\\');
			put('\\');
		} else if ((c >= 0x20 && c < 0x7f) || c >= 0x80) {
			put(c);
		} else {
			put('\\');
			put('x');
			put(digits[c >> 4]);
			put(digits[c & 15]);
		}
	}
}

static void record_begin(char kind)
{
	record_len = 0;
	put(0x1e);
	put(kind);
}

static void record_end(void)
{
	put('\n');
	console_write(record, record_len);
}

static void write_record(char kind, const char *payload)
{
	record_begin(kind);
	put_escaped(payload, length(payload));
	record_end();
}

static void write_hex_record(const char *key, uint64_t value)
{
	record_begin('C');
	put_str(key);
	put_hex(value);
	record_end();
}

/* Reports a made-up write fault at this very spot, as the kernel would. */
static void __attribute__((noinline, noreturn)) report_crash(void)
{
	uint64_t rip, rsp, *rbp;

	__asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
			 : "=r"(rip), "=r"(rsp), "=r"(rbp));
	write_record('C', "vector=14 name=page-fault");
	write_record('C', "error=0x2");
	write_hex_record("rip=", rip);
	write_hex_record("rsp=", rsp);
	write_hex_record("cr2=", 0xdeadbeef000ull);
	for (; rbp != 0 && rbp[1] != 0; rbp = (uint64_t *)rbp[0])
		write_hex_record("frame=", rbp[1]);
	write_record('X', "crash");
	shut_down(SHUTDOWN_crash);
}

static void __attribute__((noinline)) descend(int depth)
{
	if (depth > 0)
		descend(depth - 1);
	else
		report_crash();
	__asm__ volatile("");	/* keeps the recursive call a call */
}

static void mixed(void)
{
	console_puts("(XEN) text before a record\x1eOstd\\\\out\\x0a\n");
	write_record('E', "to stderr\n");
	write_record('L', "W a warning");
	write_record('L', "I some info");
	console_puts("\x1eQbogus\n\x1eO\\xzz\n\x1eX12x\n");
	console_puts("\x1eOno newline\\x00\r\n");
	write_record('X', "263");
	shut_down(SHUTDOWN_poweroff);
}

void start_c(const char *start_info)
{
	const char *cmdline = start_info + START_INFO_CMDLINE;

	record_begin('O');
	put_escaped(cmdline, length(cmdline));
	put_str("\\x0a");
	record_end();

	if (contains(cmdline, "GUEST_ACT=mixed"))
		mixed();
	if (contains(cmdline, "GUEST_ACT=crash"))
		descend(2);
	if (contains(cmdline, "GUEST_ACT=fault"))
		*(volatile int *)0x40000000 = 1;
	if (contains(cmdline, "GUEST_ACT=noexit"))
		shut_down(SHUTDOWN_poweroff);
	if (contains(cmdline, "GUEST_ACT=abort")) {
		write_record('X', "abort");
		shut_down(SHUTDOWN_crash);
	}
	if (contains(cmdline, "GUEST_ACT=hang"))
		for (;;)
			__asm__ volatile("pause");
	write_record('X', "0");
	shut_down(SHUTDOWN_poweroff);
}
