//! In-guest tests on the real Xen hypervisor, inside QEMU: each boots a std program through the
//! runner, as dom0 (about 1 s a boot) or as a domU under a Linux dom0, and checks what it printed
//! and how it ended; where the program also runs on Linux, the two must agree.
//!
//! Every domU guest is a job of [`DOMU`]: the first test that needs one boots the Linux dom0 once
//! (about 8 s) and runs all the jobs in it one after another (2 to 6 s each here); each test then
//! checks its own job's result. A new domU test is a line in the list and a `#[test]` that asks
//! `DOMU.result("its name")`.

use xen_harness::{
    DomUBatch, DomUJob, Mode, Run, repo, run, run_image, run_linux, toolchain, without_thread_ids,
    xen_bins,
};

/// The domU jobs, in the order dom0 runs them.
static DOMU: DomUBatch = DomUBatch::new(&[
    DomUJob::built("hello", hello_xen_image).env(HELLO_ENV).args(HELLO_ARGS),
    DomUJob::bin("args_env", "args_env").env(&[("HOME", "/home/x")]).args(&["one", "two three"]),
    DomUJob::bin("exit_status", "exit_status").args(&["42"]),
    DomUJob::bin("crash", "crash"),
    DomUJob::bin("threads_on_two_vcpus", "threads").vcpus(2),
    DomUJob::bin("stack_overflow", "stack_overflow").args(&["thread"]),
    // 12 s: the limit counts from before `xl create`, which took over 5 s on a loaded machine
    // (the guest was gone before its driver started).
    DomUJob::bin("sleeps_forever", "sleeper").timeout(12).driver(WATCH_FOREVER),
    DomUJob::bin("after_a_timeout", "sleeper").args(&["3"]).driver(LOOK_AROUND),
    DomUJob::bin("driven", "sleeper").args(&["2"]).driver(TALK_TO_THE_GUEST),
    // Xen services (xen_services.rs).
    DomUJob::bin("console_input", "console_input").driver(xen_services::TYPE_LINES),
    DomUJob::bin("xenstore_basics", "xenstore").args(&["basics"]).vcpus(2).driver(xen_services::XENSTORE_PEER),
    DomUJob::bin("xenstore_threads", "xenstore").args(&["threads"]).vcpus(2),
    DomUJob::bin("xenstore_hostile", "xenstore").args(&["hostile"]).driver(xen_services::HOSTILE_DOM0),
    DomUJob::bin("event_channels", "evtchn").vcpus(2),
    DomUJob::bin("shutdown_unhandled", "lifecycle").args(&["unhandled"]).driver(xen_services::XL_SHUTDOWN),
    DomUJob::bin("shutdown_handled", "lifecycle").args(&["handled"]).driver(xen_services::XL_SHUTDOWN),
    DomUJob::bin("reboot_handled", "lifecycle").args(&["reboot"]).driver(xen_services::XL_REBOOT),
    DomUJob::bin("reboot_unhandled", "lifecycle").args(&["unhandled"]).driver(xen_services::XL_REBOOT),
    DomUJob::bin("destroyed", "lifecycle").args(&["unhandled"]).driver(xen_services::XL_DESTROY),
    DomUJob::bin("after_a_destroy", "sleeper").args(&["2"]).driver(xen_services::LOOK_AROUND_AFTER_DESTROY),
    // Files (docs/fs.md).
    DomUJob::bin("files", "files").files(FILES),
    // Network (net.rs).
    DomUJob::built("rawframes", net::rawframes_image).args(&["8"]).xl(net::VIF).timeout(60).driver(net::ARPING),
    DomUJob::bin("net_arp", "net").args(&["arp"]).xl(net::VIF).timeout(60).driver(net::ANSWER_ARP),
    DomUJob::bin("net_errors", "net").args(&["errors"]).xl(net::VIF).timeout(60),
    DomUJob::bin("net_detach_raw", "net")
        .args(&["gone"])
        .log("info")
        .xl(net::THREE_VIFS)
        .timeout(60)
        .driver(net::DETACH_RAW),
    DomUJob::bin("net_loopback", "sockets").args(&["loopback"]).timeout(60),
    DomUJob::bin("net_neighbours", "sockets")
        .args(&["neighbours", "10.99.0.1:7005", "10.99.0.97:80", "10.99.0.98:80"])
        .kernel_args(&["xen.ip=10.99.0.29/24"])
        .xl(net::VIF)
        .timeout(60)
        .driver(net::NEIGHBOURS),
    DomUJob::bin("net_two_vifs", "sockets")
        .args(&["two_vifs", "8092", "10.99.0.1:7003", "10.98.0.1:7004"])
        .kernel_args(&["xen.ip=10.99.0.28/24", "xen.vif1.ip=10.98.0.28/24"])
        .log("info")
        .xl(net::TWO_VIFS)
        .timeout(60)
        .driver(net::TWO_SUBNETS),
    DomUJob::bin("net_detach_stack", "sockets")
        .args(&["vif_gone", "10.99.0.27", "8090"])
        .kernel_args(&["xen.ip=10.99.0.27/24", "xen.gw=10.99.0.1"])
        .log("info")
        .xl(net::VIF_MTU_1400)
        .timeout(60)
        .driver(net::DETACH_STACK),
    DomUJob::bin("net_client", "sockets")
        .args(&["client", "10.99.0.1:7000", "10.99.0.99:80"])
        .xl(net::VIF)
        .timeout(90)
        .driver(net::NC_SERVER),
    DomUJob::bin("net_http", "sockets").args(&["http", "8080", "2"]).xl(net::VIF).timeout(90).driver(net::WGET),
    DomUJob::bin("net_exit_sending", "sockets")
        .args(&["exit_sending", "8080", "1000000"])
        .xl(net::VIF)
        .timeout(90)
        .driver(net::WGET_EXIT),
    DomUJob::bin("net_udp", "sockets").args(&["dns", "53", "1"]).xl(net::VIF).timeout(60).driver(net::NSLOOKUP),
    DomUJob::bin("net_static", "sockets")
        .args(&["static", "10.99.0.1:7001"])
        .kernel_args(&["xen.ip=10.99.0.26/24", "xen.gw=10.99.0.1", "xen.dns=127.0.0.1"])
        .xl(net::VIF)
        .timeout(60)
        .driver(net::NC_STATIC),
    DomUJob::built("tcp_echo", net::tcp_echo_image).args(&["7", "1"]).xl(net::VIF).timeout(60).driver(net::NC_ECHO),
    DomUJob::built("http", net::http_image).args(&["8080", "3"]).xl(net::VIF).timeout(90).driver(net::WGET_EXAMPLE),
    DomUJob::built("http_connections", net::http_image)
        .args(&["8080", "1100"])
        .xl(net::VIF)
        .timeout(300)
        .built_driver(net::many_connections_driver),
    DomUJob::bin("net_bulk_100mb", "bulk")
        .args(net::BULK_ARGS)
        .xl(net::VIF)
        .timeout(300)
        .built_driver(net::bulk_driver),
    DomUJob::bin("net_dns", "sockets")
        .args(&["resolve", "dom0.xen.test", "7002", "nowhere.xen.test"])
        .xl(net::VIF)
        .timeout(60)
        .driver(net::DNSMASQ),
    // Disks (blk.rs; docs/fs.md, "Disks").
    DomUJob::bin("blk_write", "blk").args(&["write"]).disk(blk::rw_image, false),
    DomUJob::bin("blk_verify", "blk").args(&["verify"]).disk(blk::rw_image, false),
    DomUJob::bin("blk_readonly", "blk").args(&["readonly"]).disk(blk::ro_image, true),
    DomUJob::bin("blk_sector4k", "blk").args(&["sector4k"]).disk(blk::four_k_image, false).sector_size(4096),
    // A FAT volume on a disk through std::fs (fat.rs; docs/fs.md, "A filesystem on a disk").
    DomUJob::bin("fat_write", "blk").args(&["fat", "write"]).disk(fat::rw_image, false).kernel_args(fat::MOUNT).timeout(120),
    DomUJob::bin("fat_verify", "blk").args(&["fat", "verify"]).disk(fat::rw_image, false).kernel_args(fat::MOUNT).timeout(120),
    DomUJob::bin("fat_readonly", "blk").args(&["fat", "readonly"]).disk(fat::ro_image, true).kernel_args(fat::MOUNT),
    DomUJob::bin("fat_garbage", "blk").args(&["fat", "garbage"]).disk(fat::garbage_image, false).kernel_args(fat::MOUNT),
    DomUJob::bin("fat_full", "blk").args(&["fat", "full"]).disk(fat::full_image, false).kernel_args(fat::MOUNT),
    DomUJob::bin("fat_full_verify", "blk").args(&["fat", "full_verify"]).disk(fat::full_image, false).kernel_args(fat::MOUNT),
    // exit, and abort, while threads write: the guest ends at once, what was written kept.
    DomUJob::bin("fat_exit_busy", "blk").args(&["fat", "exit_busy"]).disk(fat::busy_image, false).kernel_args(fat::MOUNT).timeout(30),
    DomUJob::bin("fat_exit_busy_verify", "blk")
        .args(&["fat", "exit_busy_verify"])
        .disk(fat::busy_image, false)
        .kernel_args(fat::MOUNT)
        .timeout(120),
    DomUJob::bin("fat_abort", "blk").args(&["fat", "abort"]).disk(fat::abort_image, false).kernel_args(fat::MOUNT).timeout(30),
    DomUJob::bin("fat_abort_verify", "blk").args(&["fat", "abort_verify"]).disk(fat::abort_image, false).kernel_args(fat::MOUNT).timeout(120),
    // 96 MiB written by a 64 MiB guest: the file never is in memory whole.
    DomUJob::bin("fat_huge", "blk").args(&["fat", "huge"]).disk(fat::huge_image, false).kernel_args(fat::MOUNT).memory(64).timeout(400),
    DomUJob::bin("fat_huge_verify", "blk")
        .args(&["fat", "huge_verify"])
        .disk(fat::huge_image, false)
        .kernel_args(fat::MOUNT)
        .memory(64)
        .timeout(300),
]);

/// The packed files of the `files` guest, relative to the repository.
const FILES: &str = "tests/guest/files";

/// Runs the `files` guest on Linux, on a fresh copy of its packed files, and checks that Xen
/// printed the same.
fn assert_files_agree_with_linux(xen: &Run, copy_name: &str) {
    let copy = repo().join("target").join(copy_name);
    let _ = std::fs::remove_dir_all(&copy);
    let status = std::process::Command::new("cp").arg("-a").arg(repo().join(FILES)).arg(&copy).status();
    assert!(status.unwrap().success(), "cannot copy {FILES}");
    let linux = run_linux("files", &[], &[copy.to_str().unwrap()]);
    assert_eq!(linux.status, 0, "on Linux: {}", linux.stderr);
    assert_eq!(xen.stdout, linux.stdout, "stdout differs from Linux; stderr: {}", xen.stderr);
    assert_eq!(xen.status, 0, "stderr: {}", xen.stderr);
    assert!(xen.stdout.ends_with("done\n"));
}

#[test]
fn packed_files_and_the_overlay_behave_as_on_linux_as_dom0() {
    let files = format!("--files={}", repo().join(FILES).display());
    let xen = run("files", Mode::Dom0, &[&files], &[]);
    assert_files_agree_with_linux(&xen, "files-linux-dom0");
}

#[test]
fn packed_files_and_the_overlay_behave_as_on_linux_as_domu() {
    assert_files_agree_with_linux(DOMU.result("files"), "files-linux-domu");
}

#[test]
fn without_packed_files_the_overlay_still_works() {
    let xen = run("files", Mode::Dom0, &[], &[]);
    assert_eq!(xen.status, 101, "stderr: {}", xen.stderr);
    assert!(xen.stderr.contains("No such file or directory"), "{}", xen.stderr);
}

#[path = "guest/xen_services.rs"]
mod xen_services;

#[path = "guest/net.rs"]
mod net;

#[path = "guest/blk.rs"]
mod blk;
#[path = "guest/fat.rs"]
mod fat;

/// A driver that never ends by itself: dom0 must stop it with the guest.
const WATCH_FOREVER: &str = "xenstore-watch /local/domain/$DOMID/name\n";

/// What is left in dom0 from earlier jobs, seen from the next one.
const LOOK_AROUND: &str = "wait_output 'sleeping for'
echo \"domains: $(xl list | awk 'NR > 1 { print $1 }' | tr '\\n' ' ')\"
echo \"console logs: $(ls /var/log/xen/console | tr '\\n' ' ')\"
echo \"followers: $(pidof follow | wc -w), watchers: $(pidof xenstore-watch | wc -w)\"
";

/// Reads the guest's name from xenstore and follows its output.
const TALK_TO_THE_GUEST: &str = "wait_output 'sleeping for 2 s'
echo \"name: $(xenstore-read /local/domain/$DOMID/name)\"
console_input 'typed into the console'
wait_output 'woke up' 20
echo 'saw the guest wake up'
";

/// `TcpStream::set_linger` (unstable, `tcp_linger`): the value in whole seconds, a reset at a
/// close with 0, a close that waits for the peer's acknowledgement, or for the time given.
#[test]
fn linger_behaves_as_on_linux() {
    assert_same_as_linux("linger", Mode::Dom0, &[], &[]);
}

fn assert_same_as_linux(name: &str, mode: Mode, env: &[(&str, &str)], args: &[&str]) {
    let options: Vec<String> = env.iter().map(|(k, v)| format!("--env={k}={v}")).collect();
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    assert_agrees_with_linux(&run(name, mode, &options, args), name, env, args);
}

fn assert_agrees_with_linux(xen: &Run, name: &str, env: &[(&str, &str)], args: &[&str]) {
    let linux = run_linux(name, env, args);
    assert_eq!(xen.stdout, linux.stdout, "stdout differs from Linux; stderr: {}", xen.stderr);
    assert_eq!(without_thread_ids(&xen.stderr), without_thread_ids(&linux.stderr));
    assert_eq!(xen.status, linux.status, "status differs; stderr: {}", xen.stderr);
}

#[test]
fn hello_prints_what_it_prints_on_linux_as_dom0() {
    let hello = repo().join("examples/hello");
    let status = std::process::Command::new(toolchain().join("bin/cargo"))
        .current_dir(&hello)
        .args(["build", "--release", "--quiet", "--target", "x86_64-unknown-xen"])
        .status()
        .unwrap();
    assert!(status.success());
    let xen = run_image(
        &hello.join("target/x86_64-unknown-xen/release/hello"),
        Mode::Dom0,
        &["--env=HELLO_NAME=Xen"],
        &["5", "two words"],
    );
    assert_eq!(xen.status, 5, "stderr: {}", xen.stderr);
    assert!(xen.stdout.starts_with("Hello, Xen!\nargs: [\"5\", \"two words\"]\n"), "{}", xen.stdout);
    assert!(xen.stdout.contains("sqrt(2)*pi = 4.442883, e^1.5 = 4.4817, ln(10) = 2.3026\n"));
    assert_eq!(xen.stderr, "this line goes to stderr\n");
}

const HELLO_ENV: &[(&str, &str)] = &[("HELLO_NAME", "Xen")];
const HELLO_ARGS: &[&str] = &["7", "two words", ""];

/// Builds examples/hello with `cargo` (for Xen when `target` is given) into `target/DIR`.
fn build_hello(cargo: std::path::PathBuf, target: Option<&str>, dir: &str) {
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(repo().join("examples/hello"));
    cmd.args(["build", "--release", "--quiet", "--target-dir"]).arg(repo().join(dir));
    if let Some(target) = target {
        cmd.args(["--target", target]);
    } else {
        cmd.env_remove("RUSTC");
    }
    assert!(cmd.status().unwrap().success());
}

/// examples/hello built for Xen.
fn hello_xen_image() -> std::path::PathBuf {
    build_hello(toolchain().join("bin/cargo"), Some("x86_64-unknown-xen"), "target/hello-xen");
    repo().join("target/hello-xen/x86_64-unknown-xen/release/hello")
}

/// examples/hello run on Xen (`xen`) and built for and run on Linux: everything must agree.
fn assert_hello_matches_linux(xen: &Run) {
    build_hello("/usr/bin/cargo".into(), None, "target/hello-linux");
    use std::os::unix::process::CommandExt;
    let linux: Run = std::process::Command::new(repo().join("target/hello-linux/release/hello"))
        .arg0("hello")
        .env_clear()
        .envs(HELLO_ENV.iter().copied())
        .args(HELLO_ARGS)
        .output()
        .unwrap()
        .into();
    assert_eq!(xen.stdout, linux.stdout);
    assert_eq!(xen.stderr, linux.stderr);
    assert_eq!((xen.status, linux.status), (7, 7));
}

#[test]
fn hello_prints_exactly_what_it_prints_on_linux_as_dom0() {
    let options: Vec<String> = HELLO_ENV.iter().map(|(k, v)| format!("--env={k}={v}")).collect();
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    assert_hello_matches_linux(&run_image(&hello_xen_image(), Mode::Dom0, &options, HELLO_ARGS));
}

#[test]
fn hello_prints_exactly_what_it_prints_on_linux_as_domu() {
    assert_hello_matches_linux(DOMU.result("hello"));
}

#[test]
fn args_and_env_reach_the_program_as_dom0() {
    assert_same_as_linux(
        "args_env",
        Mode::Dom0,
        &[("HOME", "/root"), ("REMOVED", "x"), ("ODD", "a b,c%d=é")],
        &["plain", "with space", "--dash", "comma,and%percent", "ünïcode", ""],
    );
}

#[test]
fn args_and_env_reach_the_program_as_domu() {
    let xen = DOMU.result("args_env");
    assert_agrees_with_linux(xen, "args_env", &[("HOME", "/home/x")], &["one", "two three"]);
}

#[test]
fn exit_statuses_come_back_as_dom0() {
    for code in ["0", "3", "127", "255"] {
        let xen = run("exit_status", Mode::Dom0, &[], &[code]);
        assert_eq!(xen.status.to_string(), code, "stderr: {}", xen.stderr);
        assert_eq!(xen.stdout, format!("exiting with {code}\n"));
    }
}

#[test]
fn a_bad_kernel_option_ends_the_guest_with_status_2_naming_it() {
    for (arg, what) in [("--kernel-arg=xen.bogus=1", "an unknown xen. option: `xen.bogus=1`"), ("--kernel-arg=xen.ip=300.1.1.1/24", "a bad value for a xen. option: `xen.ip=300.1.1.1/24`")] {
        let xen = run("exit_status", Mode::Dom0, &[arg], &["0"]);
        assert_eq!(xen.status, 2, "{arg}: stderr: {}", xen.stderr);
        assert!(xen.stderr.contains(&format!("bad command line: {what}")), "{arg}: {}", xen.stderr);
        assert_eq!(xen.stdout, "", "main must not run");
    }
}

#[test]
fn exit_status_comes_back_as_domu() {
    let xen = DOMU.result("exit_status");
    assert_eq!(xen.status, 42, "stderr: {}", xen.stderr);
    assert_eq!(xen.stdout, "exiting with 42\n");
}

#[test]
fn panics_unwind_and_main_panic_exits_101() {
    assert_same_as_linux("panics", Mode::Dom0, &[], &[]);
    let xen = run("panics", Mode::Dom0, &[], &[]);
    assert_eq!(xen.status, 101);
    assert!(xen.stderr.contains("main gives up: 42"), "{}", xen.stderr);
    assert_eq!(xen.stdout, "caught: true\npayload: Some(17)\n");
    assert_same_as_linux("panics", Mode::Dom0, &[], &["no-main-panic"]);
}

#[test]
fn a_read_of_an_unmapped_address_is_a_symbolized_crash() {
    let xen = run("crash", Mode::Dom0, &[], &[]);
    assert_eq!(xen.status, 139, "stderr: {}", xen.stderr);
    assert_eq!(xen.stdout, "about to read address 0x18\n");
    assert!(xen.stderr.contains("page fault"), "{}", xen.stderr);
    assert!(xen.stderr.contains("0x18"), "{}", xen.stderr);
    assert!(xen.stderr.contains("read_unmapped"), "no symbolized frame: {}", xen.stderr);
    assert!(xen.stderr.contains("crash.rs"), "no file and line: {}", xen.stderr);
}

#[test]
fn a_crash_is_reported_as_domu_too() {
    let xen = DOMU.result("crash");
    assert_eq!(xen.status, 139, "stderr: {}", xen.stderr);
    assert!(xen.stderr.contains("read_unmapped"), "{}", xen.stderr);
}

#[test]
fn allocating_256_mib_in_a_64_mib_guest_succeeds() {
    let xen = run("alloc", Mode::Dom0, &["--memory=64"], &[]);
    assert_eq!(xen.status, 0, "stderr: {}", xen.stderr);
    assert!(xen.stdout.starts_with("allocated 256 MiB in "), "{}", xen.stdout);
}

#[test]
fn the_program_reads_the_guest_s_memory_total_and_use() {
    let xen = run("memory", Mode::Dom0, &["--memory=64"], &[]);
    assert_eq!(xen.status, 0, "stderr: {}", xen.stderr);
    assert!(xen.stdout.starts_with("total 64 MiB\n"), "{}", xen.stdout);
    assert!(xen.stdout.contains("in use grew by at least 32 MiB"), "{}", xen.stdout);
}

#[test]
fn running_out_of_memory_is_reported_and_fails() {
    let xen = run("oom", Mode::Dom0, &["--memory=32"], &[]);
    assert_eq!(xen.status, 134, "stderr: {}", xen.stderr);
    assert!(xen.stderr.contains("memory allocation of 1048576 bytes failed"), "{}", xen.stderr);
    assert!(xen.stdout.contains("holding 16 MiB\n"), "{}", xen.stdout);
}

#[test]
fn unsupported_operations_return_errors() {
    let xen = run("unsupported", Mode::Dom0, &[], &[]);
    assert_eq!(xen.status, 0, "stderr: {}", xen.stderr);
    assert_eq!(
        xen.stdout,
        "fs: Unsupported\nprocess: Unsupported\n\
         parallelism: Ok(1)\nstdin: Ok((0, \"\"))\n"
    );
}

#[test]
fn time_is_monotonic_and_sleep_is_never_early() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let env = format!("--env=HOST_TIME={}", now.as_secs());
    let xen = run("time", Mode::Dom0, &[&env], &[]);
    assert_eq!(xen.status, 0, "stderr: {}", xen.stderr);
    assert_eq!(
        xen.stdout,
        "wall clock within a minute of the host's: true\nmonotonic and sleeps honoured\n"
    );
}

#[test]
fn a_command_line_too_long_for_xen_is_refused() {
    let long = "x".repeat(1100);
    let xen = run("exit_status", Mode::Dom0, &[], &[&long]);
    assert_eq!(xen.status, 2);
    assert!(xen.stderr.contains("1023"), "{}", xen.stderr);
}

const THREADS_STDOUT: &str = "named thread: Some(\"worker\")\nmutex total: 640000\n\
    mpsc sum: 31996000\ncondvar round trips: 10000\nrwlock value: 1000\nbarrier leaders: 1\n\
    thread-local in a new thread: 1\nthread-local in main: 5\ndestructors run: 1\n\
    a spinning thread does not stop others: true\n\
    10000 threads joined, at most 64 alive: true\n\
    panicking thread's join: Err(Some(\"a thread gives up\"))\n";

#[test]
fn threads_locks_channels_and_thread_locals_behave_as_on_linux() {
    assert_same_as_linux("threads", Mode::Dom0, &[], &[]);
    let xen = run("threads", Mode::Dom0, &[], &[]);
    assert_eq!(xen.stdout, THREADS_STDOUT);
}

#[test]
fn threads_behave_the_same_on_two_vcpus() {
    let xen = run("threads", Mode::Dom0, &["--vcpus=2"], &[]);
    assert_eq!(xen.status, 0, "stderr: {}", xen.stderr);
    assert_eq!(xen.stdout, THREADS_STDOUT);
}

/// `xen.profile=HZ` (docs/profile.md): the program runs as without it, and at its end the
/// kernel logs how many samples it took and the addresses found most often, which name the
/// program's functions.
#[test]
fn the_profiler_reports_where_the_program_ran() {
    let xen = run("threads", Mode::Dom0, &["--verbose", "--kernel-arg", "xen.profile=1000"], &[]);
    assert_eq!(xen.status, 0, "stderr: {}", xen.stderr);
    assert_eq!(xen.stdout, THREADS_STDOUT);
    let head = xen.stderr.lines().find(|l| l.contains("profile: ") && l.contains(" samples at 1000 Hz"));
    let head = head.unwrap_or_else(|| panic!("no profile report in: {}", xen.stderr));
    let samples: u64 = head.split("profile: ").nth(1).and_then(|t| t.split(' ').next()?.parse().ok()).unwrap();
    assert!(samples > 0, "{head}");
    let addresses: Vec<u64> = xen
        .stderr
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split("profile: 0x").nth(1)?.split(' ').next()?, 16).ok())
        .collect();
    assert!(!addresses.is_empty() && addresses.len() <= 200, "{}", xen.stderr);
    // Every address lies in the program's image (the kernel is linked into it at 6 MiB).
    let image = std::fs::metadata(xen_bins().join("threads")).unwrap().len();
    assert!(addresses.iter().all(|&a| (0x60_0000..0x60_0000 + image).contains(&a)), "{addresses:x?}");
}

#[test]
fn two_busy_threads_run_at_once_on_two_vcpus() {
    let xen = run("parallel", Mode::Dom0, &["--vcpus=2"], &[]);
    assert_eq!(xen.status, 0, "stderr: {}", xen.stderr);
    assert_eq!(xen.stdout, "available parallelism: 2\na busy thread watching another: in parallel\n");
}

#[test]
fn threads_run_as_domu_on_two_vcpus() {
    let xen = DOMU.result("threads_on_two_vcpus");
    assert_eq!(xen.status, 0, "stderr: {}", xen.stderr);
    assert_eq!(xen.stdout, THREADS_STDOUT);
}

/// The lines of a `cargo test` run that do not depend on the platform or the clock, sorted.
fn test_outcomes(output: &str) -> Vec<String> {
    let mut lines: Vec<String> = output
        .lines()
        .filter(|l| l.starts_with("test ") || l.starts_with("running ") || l.starts_with("failures:"))
        .map(|l| match l.find("; finished in") {
            Some(cut) => l[..cut].to_string(),
            None => l.to_string(),
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn cargo_test_gives_the_same_summary_as_on_linux() {
    let krate = repo().join("tests/sample-crate");
    let cargo_test = |cargo: std::path::PathBuf, xen: bool| {
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(&krate).args(["test", "--no-fail-fast", "--lib", "--tests"]);
        if xen {
            cmd.args(["--target", "x86_64-unknown-xen", "--target-dir"])
                .arg(repo().join("target/sample-crate-xen"));
        } else {
            cmd.env_remove("RUSTC").arg("--target-dir").arg(repo().join("target/sample-crate-linux"));
        }
        let out = cmd.args(["--", "--test-threads=2"]).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (xen_status, xen) = cargo_test(toolchain().join("bin/cargo"), true);
    let (linux_status, linux) = cargo_test("/usr/bin/cargo".into(), false);
    assert_eq!(test_outcomes(&xen), test_outcomes(&linux), "xen:\n{xen}\nlinux:\n{linux}");
    assert_eq!(xen_status, linux_status);
    assert!(xen.contains("test result: FAILED. 5 passed; 2 failed; 1 ignored"), "{xen}");
    assert!(xen.contains("test result: ok. 2 passed; 0 failed"), "{xen}");
}

#[test]
fn a_stack_overflow_is_reported_as_on_linux() {
    for (args, name) in [(&[][..], "main"), (&["thread"][..], "deep")] {
        let xen = run("stack_overflow", Mode::Dom0, &[], args);
        let linux = run_linux("stack_overflow", &[], args);
        assert_eq!(xen.status, 134, "stderr: {}", xen.stderr);
        assert_eq!(xen.status, linux.status);
        let message = format!(
            "thread '{name}' has overflowed its stack\nfatal runtime error: stack overflow, aborting\n"
        );
        assert!(without_thread_ids(&xen.stderr).contains(&message), "{}", xen.stderr);
        assert!(without_thread_ids(&linux.stderr).contains(&message), "{}", linux.stderr);
    }
}

#[test]
fn a_stack_overflow_is_reported_as_domu_too() {
    let xen = DOMU.result("stack_overflow");
    assert_eq!(xen.status, 134, "stderr: {}", xen.stderr);
    let stderr = without_thread_ids(&xen.stderr);
    assert!(stderr.contains("thread 'deep' has overflowed its stack"), "{}", xen.stderr);
}

#[test]
fn a_guest_that_never_ends_is_stopped_at_its_timeout_and_the_next_job_runs_clean() {
    let stuck = DOMU.result("sleeps_forever");
    assert_eq!((stuck.status, stuck.end.as_str()), (124, "timeout"), "stderr: {}", stuck.stderr);
    assert_eq!(stuck.stdout, "sleeping forever\n");
    assert_eq!(stuck.stderr, "xen-runner: the guest ran past the timeout of 12 s; stopped it\n");
    // Its driver never ends by itself: dom0 stopped it with the guest.
    assert!(stuck.driver_output.contains("/local/domain/"), "{}", stuck.driver_output);
    assert_eq!(stuck.driver_status, Some(143), "{}", stuck.driver_output);

    let next = DOMU.result("after_a_timeout");
    assert_eq!(next.status, 0, "stderr: {}", next.stderr);
    assert_eq!(next.stdout, "sleeping for 3 s\nwoke up\n");
    assert_eq!(next.end, "poweroff");
    assert_ne!(next.domain, stuck.domain);
    // Only this guest's domain, console log and follower are there; the earlier driver is gone.
    let expected = format!(
        "domains: Domain-0 {0} \nconsole logs: guest-{0}.log \nfollowers: 1, watchers: 0\n",
        next.domain
    );
    assert_eq!(next.driver_output, expected);
    assert_eq!(next.driver_status, Some(0));
}

#[test]
fn a_driver_script_reads_xenstore_and_follows_the_guests_output() {
    let driven = DOMU.result("driven");
    assert_eq!(driven.status, 0, "stderr: {}", driven.stderr);
    assert_eq!(driven.stdout, "sleeping for 2 s\nwoke up\n");
    let expected = format!("name: {}\nsaw the guest wake up\n", driven.domain);
    assert_eq!(driven.driver_output, expected);
    assert_eq!(driven.driver_status, Some(0));
}

/// Rust's own std tests (`library/std/tests` of Debian's 1.96.0 source, built by
/// `tests/std-tests`) pass on Xen as dom0, but for the skips docs/std-tests.md gives reasons
/// for; on Linux the same suites pass 437 and ignore 1.
#[test]
fn rusts_own_std_tests_pass_on_xen() {
    std_suites_pass(1, None);
}

#[test]
fn rusts_own_std_thread_and_sync_tests_pass_on_two_vcpus() {
    std_suites_pass(2, Some(&["sync", "thread", "thread_local", "time"]));
}

/// Runs Rust's own std test suites on Xen with `vcpus` (all suites, or `only` those), and
/// checks each one's summary against the counts in `docs/std-tests.md`.
fn std_suites_pass(vcpus: u32, only: Option<&[&str]>) {
    // (suite, tests skipped on Xen, how many pass, how many std itself ignores).
    let suites: [(&str, &[&str], u32, u32); 8] = [
        ("env", &["test_self_exe_path"], 5, 0),
        ("num", &[], 25, 0),
        ("panic", &[], 1, 0),
        ("path", &["test_push", "test_set_file_name"], 30, 0),
        ("sync", &["rwlock::test_rwlock_max_readers"], 335, 1),
        ("thread", &[], 5, 0),
        ("thread_local", &[], 12, 0),
        ("time", &[], 14, 0),
    ];
    let mut wrong = Vec::new();
    for (suite, skips, passed, ignored) in suites {
        if only.is_some_and(|only| !only.contains(&suite)) {
            continue;
        }
        let mut cmd = std::process::Command::new(toolchain().join("bin/cargo"));
        cmd.current_dir(repo().join("tests/std-tests"))
            .args(["test", "--target", "x86_64-unknown-xen", "--test", suite, "--target-dir"])
            .arg(repo().join("target/std-tests-xen"))
            .env("XEN_RUNNER_MODE", "dom0")
            .env("XEN_RUNNER_TIMEOUT", "300")
            .env("XEN_RUNNER_VCPUS", vcpus.to_string());
        for var in ["XEN_RUNNER_ENV", "XEN_RUNNER_MEMORY"] {
            cmd.env_remove(var);
        }
        // `--exact` makes each `--skip` skip that test alone, not every name holding it.
        cmd.args(["--", "--exact", "--test-threads=1"]);
        for skip in skips {
            cmd.args(["--skip", skip]);
        }
        let out = cmd.output().expect("cannot run cargo");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = stdout.lines().find(|l| l.starts_with("test result: "));
        let summary = summary.map_or("no summary", |l| l.split("; finished in").next().unwrap());
        println!("{suite} ({vcpus} vCPUs): {summary}");
        let expected = format!(
            "test result: ok. {passed} passed; 0 failed; {ignored} ignored; 0 measured; {} \
             filtered out",
            skips.len()
        );
        if summary != expected {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            wrong.push(format!(
                "{suite} (status {:?}), expected {expected}:\n{stdout}\n{}",
                out.status.code(),
                tail.join("\n")
            ));
        }
    }
    assert!(wrong.is_empty(), "see docs/std-tests.md\n{}", wrong.join("\n"));
}

/// The Xen ELF notes of an image, as (type, descriptor) pairs, read from its PT_NOTE segment.
fn xen_notes(image: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let u16_at = |at: usize| u16::from_le_bytes(image[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(image[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    let mut notes = Vec::new();
    for index in 0..phnum {
        let header = phoff + index * phentsize;
        if u32_at(header) != 4 {
            continue; // not PT_NOTE
        }
        let (mut at, end) = (u64_at(header + 8), u64_at(header + 8) + u64_at(header + 32));
        while at + 12 <= end {
            let (namesz, descsz, kind) = (u32_at(at) as usize, u32_at(at + 4) as usize, u32_at(at + 8));
            let name = &image[at + 12..at + 12 + namesz];
            let desc_at = at + 12 + namesz.next_multiple_of(4);
            if name == b"Xen\0" {
                notes.push((kind, image[desc_at..desc_at + descsz].to_vec()));
            }
            at = desc_at + descsz.next_multiple_of(4);
        }
    }
    notes
}

#[test]
fn the_image_carries_the_elf_notes_xen_needs() {
    let image = std::fs::read(xen_bins().join("exit_status")).unwrap();
    let notes = xen_notes(&image);
    let note = |kind: u32| notes.iter().find(|n| n.0 == kind).map(|n| n.1.clone()).unwrap();
    let entry = u64::from_le_bytes(image[0x18..0x20].try_into().unwrap());
    let word = |kind| u64::from_le_bytes(note(kind)[..8].try_into().unwrap());
    assert_eq!(note(6), b"RustXen\0"); // XEN_ELFNOTE_GUEST_OS
    assert_eq!(note(5), b"xen-3.0\0"); // XEN_ELFNOTE_XEN_VERSION
    assert_eq!(note(8), b"generic\0"); // XEN_ELFNOTE_LOADER
    assert_eq!(word(3), 0x60_0000); // XEN_ELFNOTE_VIRT_BASE
    assert_eq!(word(4), 0x60_0000); // XEN_ELFNOTE_PADDR_OFFSET: pseudo-physical 0 at VIRT_BASE
    assert_eq!(word(1), entry); // XEN_ELFNOTE_ENTRY is the ELF entry, _start
    assert_eq!(word(2) % 4096, 0); // XEN_ELFNOTE_HYPERCALL_PAGE, page-aligned
    let features = u32::from_le_bytes(note(17)[..4].try_into().unwrap());
    assert_ne!(features & (1 << 11), 0); // XEN_ELFNOTE_SUPPORTED_FEATURES has XENFEAT_dom0
}

#[test]
fn a_panic_abort_profile_builds_and_aborts_as_on_linux() {
    let dir = repo().join("target/guest-tests-abort");
    let status = std::process::Command::new(toolchain().join("bin/cargo"))
        .current_dir(repo().join("tests/guest"))
        .args(["build", "--release", "--quiet", "--bin", "panics", "--target", "x86_64-unknown-xen"])
        .args(["--config", "profile.release.panic=\"abort\"", "--target-dir"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let xen = run_image(&dir.join("x86_64-unknown-xen/release/panics"), Mode::Dom0, &[], &[]);
    // With panic = "abort" the first panic (inside catch_unwind) already aborts, as on Linux.
    assert_eq!(xen.status, 134, "stderr: {}", xen.stderr);
    assert!(xen.stderr.contains("index out of bounds"), "{}", xen.stderr);
    assert_eq!(xen.stdout, "");
}

/// The tests of std's unit tests (`#[cfg(test)]` inside `library/std/src`, built by
/// `tests/std-unit/build`) that fail on Xen, each for a reason docs/std-tests.md gives: the
/// in-memory filesystem has no symbolic or hard links, no `try_clone` and no access times.
const STD_UNIT_FAILURES: &[&str] = &[
    "fs::tests::copy_file_follows_dst_symlink",
    "fs::tests::create_dir_all_with_junctions",
    "fs::tests::file_try_clone",
    "fs::tests::links_work",
    "fs::tests::metadata_access_times",
    "fs::tests::read_link",
    "fs::tests::realpath_works",
    "fs::tests::realpath_works_tricky",
    "fs::tests::recursive_rmdir",
    "fs::tests::recursive_rmdir_of_symlink",
    "fs::tests::symlink_hard_link",
    "fs::tests::symlink_noexist",
    "fs::tests::symlinks_work",
    "fs::tests::test_rename_symlink",
];

/// std's own unit tests (fs, io, collections, sync, thread, time, ...: 447 in 1.96.0 on
/// Xen) pass on Xen as dom0 (the network's over loopback), but for [`STD_UNIT_FAILURES`],
/// which fail as expected.
#[test]
fn rusts_own_std_unit_tests_pass_on_xen() {
    let build = std::process::Command::new(repo().join("tests/std-unit/build"))
        .env("XEN_TOOLCHAIN", toolchain())
        .output()
        .expect("cannot run tests/std-unit/build");
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    let image = String::from_utf8(build.stdout).unwrap();
    // A failure list rather than `--skip`s: libtest skips by substring (or, with `--exact`,
    // by whole name only, for every skip), and some names here begin others'.
    let args = ["--test-threads=1"];
    let r = run_image(std::path::Path::new(image.trim()), Mode::Dom0, &["--memory", "512"], &args);
    let summary = r.stdout.lines().find(|l| l.starts_with("test result: "));
    let summary = summary.map_or("no summary", |l| l.split("; finished in").next().unwrap());
    println!("std unit tests on Xen: {summary}");
    let failed: Vec<&str> = r
        .stdout
        .split("\nfailures:\n")
        .nth(2)
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .collect();
    assert_eq!(failed, STD_UNIT_FAILURES, "status {}\n{}\n{}", r.status, r.stdout, r.stderr);
    let expected = format!(
        "test result: FAILED. 432 passed; {} failed; 1 ignored; 0 measured; 0 filtered out",
        STD_UNIT_FAILURES.len()
    );
    assert_eq!(summary, expected, "status {}\n{}\n{}", r.status, r.stdout, r.stderr);
}

#[path = "guest/forward.rs"]
mod forward;
