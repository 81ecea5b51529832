//! Runs `--batch` against a stand-in harness and QEMU (no Xen): the stand-in
//! unpacks the jobs archive from QEMU's `-initrd` and "runs" each job as the
//! dom0 harness would report it, so that the manifest, the archive, the
//! splitting of the console into jobs and the results are tested end to end.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::write_tiny_image;

const RUNNER: &str = env!("CARGO_BIN_EXE_xen-runner");

/// A harness whose build makes empty files: the stand-in QEMU needs none.
const FAKE_BUILD: &str =
    "#!/bin/sh\nmkdir -p \"$1\"\nfor f in xen vmlinux initrd.cpio; do : >\"$1/$f\"; done\n";

/// Stands in for QEMU booting the dom0 harness. Each job's behaviour comes
/// from its program's name (argv[0], in the config's `extra`): `exits` exits
/// with its first argument, `crashes` writes a crash report, `hangs` is ended
/// by its timeout, `kills-qemu` ends the whole boot. A driver's text is
/// "printed" back as its output.
const FAKE_QEMU: &str = r#"#!/bin/sh
for arg; do
	[ "$prev" = -initrd ] && initrd=${arg#*,}
	prev=$arg
done
echo "qemu $*" >>"$QEMU_LOG"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" && cpio -i -d --quiet <"$initrd" || exit 1
echo "(XEN) Xen version 4.17 (fake)"
for job in jobs/*; do
	n=${job#jobs/}
	extra=$(sed -n 's/^extra = "\(.*\)"$/\1/p' "$job/xl.cfg")
	program=${extra#* -- }
	set -- $program
	echo "@@XENJOB BEGIN $n"
	how=poweroff
	case "$1" in
	exits)
		env=$(echo "${extra%% -- *}" | tr ' ' '\n' | grep -v '^xen\.' | tr '\n' ' ')
		[ -n "$env" ] && printf '\036Oenv:%s\\x0a\n' "$env"
		printf '\036Oargs:%s\\x0a\n' "$(echo "$program" | cut -d' ' -f2-)"
		printf '\036Eto stderr\\x0a\n\036X%s\n' "$2"
		;;
	crashes)
		printf '\036Cvector=14 name=page-fault error=0x2 rip=0x401000 cr2=0x18\n\036Xcrash\n'
		how=crash
		;;
	hangs)
		printf '\036Ostill here\\x0a\n'
		cat "$job/timeout" | sed 's/^/@@XENJOB DRIVER timeout file: /'
		how=timeout
		;;
	kills-qemu)
		printf '\036Ohalf a line'
		exit 1
		;;
	esac
	if [ -f "$job/driver" ]; then
		sed 's/^/@@XENJOB DRIVER /' "$job/driver"
		echo "@@XENJOB DRIVEREXIT 3"
	fi
	[ -L "$job/image" ] && echo "@@XENJOB DRIVER image is a link"
	echo "@@XENJOB END $n $how"
done
echo "@@XENJOB ALLDONE"
"#;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let harness = dir.path().join("harness");
        std::fs::create_dir(&harness).unwrap();
        write_script(&harness.join("build.sh"), FAKE_BUILD);
        write_script(&dir.path().join("qemu"), FAKE_QEMU);
        for name in ["exits", "crashes", "hangs", "kills-qemu"] {
            let image = dir.path().join(name);
            write_tiny_image(&image);
            // Images of the same bytes are stored once: keep these apart.
            let mut bytes = std::fs::read(&image).unwrap();
            bytes.extend(name.as_bytes());
            std::fs::write(&image, bytes).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `--batch` with this manifest; returns the output and the results.
    fn run(&self, manifest: &str, extra: &[&str]) -> (Output, serde_json::Value) {
        std::fs::write(self.path("manifest.json"), manifest).unwrap();
        let results = self.path("results.json");
        let _ = std::fs::remove_file(&results);
        let out = Command::new(RUNNER)
            .args(extra)
            .arg("--batch")
            .arg(self.path("manifest.json"))
            .arg("--results")
            .arg(&results)
            .arg("--harness-dir")
            .arg(self.path("harness"))
            .arg("--qemu")
            .arg(self.path("qemu"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("QEMU_LOG", self.path("qemu.log"))
            .env_remove("XEN_RUNNER_MODE")
            .env_remove("XEN_RUNNER_ENV")
            .env_remove("XEN_RUNNER_TIMEOUT")
            .output()
            .unwrap();
        let results = std::fs::read_to_string(&results)
            .map(|text| serde_json::from_str(&text).unwrap())
            .unwrap_or(serde_json::Value::Null);
        (out, results)
    }

    fn qemu_runs(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.path("qemu.log")).unwrap_or_default();
        log.lines().map(str::to_owned).collect()
    }
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn runs_every_job_in_one_boot_and_keeps_their_results_apart() {
    let setup = Setup::new();
    let manifest = r#"{ "jobs": [
        { "name": "seven", "image": "exits", "args": ["7", "a b"] },
        { "name": "crash", "image": "crashes" },
        { "name": "stuck", "image": "hangs", "timeout": 2.5,
          "driver": "wait_output still\nxenstore-read name\n" },
        { "name": "zero", "image": "exits", "args": ["0"], "memory": 96, "vcpus": 2 }
    ] }"#;
    let (out, results) = setup.run(manifest, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let runs = setup.qemu_runs();
    assert_eq!(runs.len(), 1, "one boot: {runs:?}");
    assert!(runs[0].contains("-m 992 -smp 2"), "sized for the largest job: {}", runs[0]);
    assert_eq!(results["boots"], 1);
    let jobs = results["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4);

    let seven = &jobs[0];
    assert_eq!(seven["name"], "seven");
    assert_eq!(seven["status"], 7);
    assert_eq!(seven["stdout"], "args:7 a%20b\n");
    assert_eq!(seven["stderr"], "to stderr\n");
    assert_eq!(seven["end"], "poweroff");
    assert_eq!(seven["driver_status"], serde_json::Value::Null);
    assert!(seven["domain"].as_str().unwrap().starts_with("xr-seven-"), "{seven}");
    assert!(seven["domain"].as_str().unwrap().ends_with("-1"), "{seven}");

    let crash = &jobs[1];
    assert_eq!(crash["status"], 139);
    assert_eq!(crash["end"], "crash");
    let report = crash["stderr"].as_str().unwrap();
    assert!(
        report.starts_with("guest crashed: page fault (vector 14) writing address 0x18"),
        "{report}"
    );

    let stuck = &jobs[2];
    assert_eq!(stuck["status"], 124);
    assert_eq!(stuck["end"], "timeout");
    assert_eq!(stuck["stdout"], "still here\n");
    assert_eq!(
        stuck["stderr"],
        "xen-runner: the guest ran past the timeout of 2.5 s; stopped it\n"
    );
    assert_eq!(
        stuck["driver_output"],
        "timeout file: 2.50\nwait_output still\nxenstore-read name\n"
    );
    assert_eq!(stuck["driver_status"], 3);

    let zero = &jobs[3];
    assert_eq!(zero["status"], 0);
    assert_eq!(zero["stdout"], "args:0\n");
    assert_eq!(zero["driver_output"], "image is a link\n", "the image is stored once");
    assert_ne!(zero["domain"], seven["domain"]);
}

#[test]
fn a_boot_that_dies_costs_only_the_job_it_was_running() {
    let setup = Setup::new();
    let manifest = r#"{ "jobs": [
        { "name": "first", "image": "exits", "args": ["1"] },
        { "name": "killer", "image": "kills-qemu" },
        { "name": "third", "image": "exits", "args": ["3"] },
        { "name": "fourth", "image": "exits", "args": ["4"] }
    ] }"#;
    let (out, results) = setup.run(manifest, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(setup.qemu_runs().len(), 2);
    assert_eq!(results["boots"], 2);
    let jobs = results["jobs"].as_array().unwrap();
    let statuses: Vec<_> = jobs.iter().map(|j| j["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [1, 125, 3, 4]);
    let killer = &jobs[1];
    assert_eq!(killer["end"], "unfinished");
    assert_eq!(killer["stdout"], "half a line");
    assert!(killer["stderr"].as_str().unwrap().contains("without an exit record"), "{killer}");
    assert_eq!((jobs[0]["boot"].clone(), jobs[2]["boot"].clone()), (1.into(), 2.into()));
}

#[test]
fn a_job_refused_before_booting_does_not_stop_the_others() {
    let setup = Setup::new();
    let long = "x".repeat(1100);
    let manifest = format!(
        r#"{{ "jobs": [
        {{ "name": "long", "image": "exits", "args": ["{long}"] }},
        {{ "name": "missing", "image": "no-such-image" }},
        {{ "name": "fine", "image": "exits", "args": ["5"] }}
    ] }}"#
    );
    let (out, results) = setup.run(&manifest, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let jobs = results["jobs"].as_array().unwrap();
    assert_eq!(jobs[0]["status"], 2);
    assert!(jobs[0]["stderr"].as_str().unwrap().contains("1023"), "{}", jobs[0]);
    assert_eq!(jobs[1]["status"], 125);
    assert!(jobs[1]["stderr"].as_str().unwrap().contains("cannot open the image"));
    assert_eq!(jobs[1]["end"], "refused");
    assert_eq!(jobs[2]["status"], 5);
}

#[test]
fn a_bad_manifest_is_a_usage_error() {
    let setup = Setup::new();
    let (out, results) =
        setup.run(r#"{"jobs": [{"name": "a", "image": "exits", "vcpu": 2}]}"#, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown field `vcpu`"), "{}", stderr(&out));
    assert_eq!(results, serde_json::Value::Null, "no results file");
    assert!(setup.qemu_runs().is_empty());

    let (out, _) = setup.run(r#"{"jobs": [{"name": "a", "image": "exits"}]}"#, &["--mode", "dom0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("use --mode domu"), "{}", stderr(&out));
}

#[test]
fn the_runners_options_are_the_jobs_defaults() {
    let setup = Setup::new();
    let manifest = r#"{ "jobs": [
        { "name": "default", "image": "exits", "args": ["0"] },
        { "name": "own", "image": "exits", "args": ["0"], "env": [], "timeout": 9 }
    ] }"#;
    let (out, results) =
        setup.run(manifest, &["--env", "K=v", "--timeout", "40", "--memory", "32"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let jobs = results["jobs"].as_array().unwrap();
    assert_eq!(jobs[0]["stdout"], "env:K=v \nargs:0\n");
    assert_eq!(jobs[1]["stdout"], "args:0\n");
    assert!(setup.qemu_runs()[0].contains("-m 928 "), "{:?}", setup.qemu_runs());
}

#[test]
fn a_machine_that_cannot_start_leaves_every_job_not_run() {
    let setup = Setup::new();
    std::fs::remove_file(setup.path("qemu")).unwrap();
    let (out, results) = setup.run(r#"{"jobs": [{"name": "a", "image": "exits"}]}"#, &[]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let job = &results["jobs"][0];
    assert_eq!((job["status"].clone(), job["end"].clone()), (125.into(), "not-run".into()));
    assert!(job["stderr"].as_str().unwrap().contains("starting"), "{job}");
}
