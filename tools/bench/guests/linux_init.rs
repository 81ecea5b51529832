//! What a benchmark guest needs as a bare Linux domU's `/init` (a static binary alone in its
//! initramfs): raw system calls (no libc crate), filesystems mounted, kernel modules loaded
//! from the initramfs, and a power-off at the end, since init must never return. Each guest
//! includes this file with `#[path]`; on Xen only [`end`] is compiled.

#![allow(dead_code)] // each guest uses its own part

#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::CStr;
    use std::io::{Error, Result};
    use std::os::fd::AsRawFd as _;
    use std::path::Path;
    use std::time::{Duration, Instant};

    pub const SYS_IOCTL: usize = 16;
    const SYS_MOUNT: usize = 165;
    const SYS_REBOOT: usize = 169;
    const SYS_FINIT_MODULE: usize = 313;
    const TCSBRK: usize = 0x5409;
    const LINUX_REBOOT_MAGIC1: usize = 0xfee1_dead;
    const LINUX_REBOOT_MAGIC2: usize = 672_274_793;
    const LINUX_REBOOT_CMD_POWER_OFF: usize = 0x4321_fedc;

    /// `syscall(nr, a, b, c, d, e)`; the raw result (a negative errno on failure).
    ///
    /// # Safety
    ///
    /// Every pointer among the arguments must be valid for what system call `nr` does with it
    /// for the whole call.
    pub unsafe fn syscall5(nr: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
        let ret: isize;
        // SAFETY: the caller vouches for the pointers; `syscall` clobbers rcx and r11, declared so,
        // and touches no stack.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                in("r10") d,
                in("r8") e,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// A negative system call result as an error naming `what`.
    pub fn check(ret: isize, what: impl FnOnce() -> String) -> Result<()> {
        if ret < 0 { Err(Error::other(format!("{}: {ret}", what()))) } else { Ok(()) }
    }

    /// Mounts `kind` from `source` at `target` (made if missing).
    pub fn mount(source: &CStr, target: &CStr, kind: &CStr) -> Result<()> {
        std::fs::create_dir_all(target.to_str().unwrap_or("/"))?;
        // SAFETY: three NUL-terminated strings that outlive the call; no flags, no data.
        let ret = unsafe {
            syscall5(SYS_MOUNT, source.as_ptr() as usize, target.as_ptr() as usize, kind.as_ptr() as usize, 0, 0)
        };
        check(ret, || format!("mounting {source:?} at {target:?}"))
    }

    /// `/proc` and `/sys`, unless they are mounted already.
    pub fn mount_proc_and_sys() -> Result<()> {
        if !Path::new("/proc/sys").exists() {
            mount(c"proc", c"/proc", c"proc")?;
        }
        if !Path::new("/sys/class").exists() {
            mount(c"sysfs", c"/sys", c"sysfs")?;
        }
        Ok(())
    }

    /// Loads the kernel module `/NAME.ko` of the initramfs.
    pub fn load_module(name: &str) -> Result<()> {
        let module = std::fs::File::open(format!("/{name}.ko"))?;
        // SAFETY: an open file descriptor and an empty NUL-terminated argument string.
        let ret = unsafe { syscall5(SYS_FINIT_MODULE, module.as_raw_fd() as usize, c"".as_ptr() as usize, 0, 0, 0) };
        check(ret, || format!("finit_module({name})"))
    }

    /// Waits up to 20 s for `path` to appear (a driver's probe); `what` names it in the error.
    pub fn wait_for(path: &str, what: &str) -> Result<()> {
        let start = Instant::now();
        while !Path::new(path).exists() {
            if start.elapsed() > Duration::from_secs(20) {
                return Err(Error::other(format!("{what} in 20 s")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits until the console has taken stdout's bytes, gives xenconsoled a moment to read them
    /// out of the ring, and powers off (Xen: a poweroff shutdown of the domain).
    pub fn power_off() -> ! {
        // tcdrain(1): TCSBRK with a non-zero argument waits for the output to drain.
        // SAFETY: integers only.
        unsafe { syscall5(SYS_IOCTL, 1, TCSBRK, 1, 0, 0) };
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: integers only.
        let ret = unsafe {
            syscall5(SYS_REBOOT, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_POWER_OFF, 0, 0)
        };
        println!("xbench failed reboot returned {ret}");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

/// Prints the guest's last line (`xbench done` or `xbench failed ...`) and, as Linux's init
/// (where returning would panic the kernel), powers off.
pub fn end(outcome: std::io::Result<()>) {
    match outcome {
        Ok(()) => println!("xbench done"),
        Err(e) => println!("xbench failed {e}"),
    }
    #[cfg(target_os = "linux")]
    if std::process::id() == 1 {
        power_off();
    }
}
