/*
 * The few parts of Xen's guest ABI that the minimal guest uses, written
 * down here from the public headers (xen/include/public/...) so that the
 * guest builds with nothing but a freestanding compiler.  Names follow the
 * headers; each block says which header defines it.
 */
#ifndef MINIMAL_GUEST_XEN_H
#define MINIMAL_GUEST_XEN_H

#ifndef __ASSEMBLER__
#include <stdint.h>
#endif

/* xen/include/public/elfnote.h: note types read by Xen's ELF loader. */
#define XEN_ELFNOTE_ENTRY		1
#define XEN_ELFNOTE_HYPERCALL_PAGE	2
#define XEN_ELFNOTE_VIRT_BASE		3
#define XEN_ELFNOTE_XEN_VERSION		5
#define XEN_ELFNOTE_GUEST_OS		6
#define XEN_ELFNOTE_LOADER		8

/* xen/include/public/xen.h: hypercall numbers. */
#define __HYPERVISOR_console_io		18
#define __HYPERVISOR_sched_op		29
#define __HYPERVISOR_event_channel_op	32
#define __HYPERVISOR_physdev_op		33

/* xen/include/public/xen.h: console_io commands. */
#define CONSOLEIO_write			0

/* xen/include/public/xen.h: start_info.flags. */
#define SIF_INITDOMAIN			(1u << 1)

/* xen/include/public/xen.h: length of start_info.cmd_line, NUL included. */
#define MAX_GUEST_CMDLINE		1024

#ifndef __ASSEMBLER__
/*
 * xen/include/public/xen.h: the page Xen hands a PV guest at boot (its
 * address arrives in %rsi).  Only the x86_64 layout is written here:
 * "unsigned long" and xen_pfn_t are both 64 bits wide.
 */
struct start_info {
	char magic[32];			/* "xen-<version>-<platform>" */
	uint64_t nr_pages;		/* pages given to the domain */
	uint64_t shared_info;		/* machine address of shared_info */
	uint32_t flags;			/* SIF_* */
	uint64_t store_mfn;		/* xenstore ring, machine frame */
	uint32_t store_evtchn;
	union {
		struct {
			uint64_t mfn;	/* console ring, machine frame */
			uint32_t evtchn;
		} domU;
		struct {
			uint32_t info_off;
			uint32_t info_size;
		} dom0;
	} console;
	uint64_t pt_base;		/* virtual address of the L4 table */
	uint64_t nr_pt_frames;
	uint64_t mfn_list;		/* virtual address of the p2m array */
	uint64_t mod_start;
	uint64_t mod_len;
	char cmd_line[MAX_GUEST_CMDLINE];
	uint64_t first_p2m_pfn;
	uint64_t nr_p2m_frames;
};

#endif /* __ASSEMBLER__ */

/* xen/include/public/sched.h */
#define SCHEDOP_yield			0
#define SCHEDOP_shutdown		2
#define SHUTDOWN_poweroff		0
#define SHUTDOWN_reboot			1
#define SHUTDOWN_crash			3

/* xen/include/public/event_channel.h */
#define EVTCHNOP_send			4

/* xen/include/public/physdev.h */
#define PHYSDEVOP_set_iopl		6

/*
 * xen/include/public/arch-x86/xen-x86_64.h: the read-only machine-to-phys
 * table that Xen maps into every 64-bit PV guest, indexed by machine frame.
 */
#define MACH2PHYS_VIRT_START		0xFFFF800000000000UL

#define PAGE_SHIFT			12

#ifndef __ASSEMBLER__
struct sched_shutdown {
	uint32_t reason;		/* SHUTDOWN_* */
};

struct evtchn_send {
	uint32_t port;			/* IN: local end of the channel */
};

struct physdev_set_iopl {
	uint32_t iopl;			/* IN */
};

/*
 * xen/include/public/io/console.h: the shared console page.  The guest
 * produces into out[] and advances out_prod; the console daemon consumes
 * and advances out_cons.  Indexes run freely and are masked on use.
 */
typedef uint32_t XENCONS_RING_IDX;

struct xencons_interface {
	char in[1024];
	char out[2048];
	XENCONS_RING_IDX in_cons, in_prod;
	XENCONS_RING_IDX out_cons, out_prod;
};
#endif /* __ASSEMBLER__ */

#endif
