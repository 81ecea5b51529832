#!/bin/sh
# Builds the harness's Linux PV dom0 from Debian packages.
#
#   ci/dom0/build.sh OUTDIR
#
# OUTDIR/xen          the hypervisor (xen-hypervisor-4.17-amd64), uncompressed,
#                     as QEMU's multiboot loader needs it
# OUTDIR/vmlinux      Debian's kernel (linux-image-amd64), uncompressed:
#                     Xen takes 2.3 s to decompress a bzImage under QEMU
# OUTDIR/initrd.cpio  busybox-static, the xl toolstack (xen-utils-4.17,
#                     xenstore-utils) with its shared libraries, the Xen
#                     backend modules, socat, dnsmasq (dnsmasq-base),
#                     ci/dom0/init as /init, follow,
#                     vif-bridge, block and the drivers' helpers (driver-lib.sh)
#
# The packages are fetched with apt-get download and unpacked with
# dpkg-deb -x; nothing is installed into the host except the tools this
# script runs (cpio, xz-utils, binutils, gcc).  OUTDIR/key records the
# package versions and a hash of the files in ci/dom0 that go into the
# image; when it matches, nothing is rebuilt.  OUTDIR/debs keeps the
# downloaded packages.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
aptlog=$out/apt.log

step() { printf 'dom0-build: %s\n' "$*"; }
die() { printf 'dom0-build: error: %s\n' "$*" >&2; exit 1; }

# Packages the image is made of, besides the kernel; their library
# dependencies are added below.
ROOT_PACKAGES="busybox-static xen-utils-4.17 xenstore-utils libgcc-s1
	xen-hypervisor-4.17-amd64 socat dnsmasq-base"
# Binaries taken from xen-utils-4.17 (in /usr/lib/xen-4.17/bin).
XEN_BINARIES="xl xenstored xenconsoled xenconsole xen-init-dom0
	libxl-save-helper"
# Kernel modules, in the order /init loads them.
MODULES="xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback
	xen-netback llc stp bridge e1000 virtio_ring virtio virtio_pci_modern_dev
	virtio_pci_legacy_dev virtio_pci virtio_blk"
# Files of ci/dom0 that end up in the image (their hash is in the key).
IMAGE_SOURCES="build.sh init follow.c vif-bridge block driver-lib.sh"

apt_quiet() { "$@" >>"$aptlog" 2>&1; }

# Host tools, installed only when missing.
ensure_host_tools() {
	missing=
	for pair in cpio:cpio xz:xz-utils readelf:binutils gcc:gcc \
		dpkg-deb:dpkg apt-get:apt; do
		command -v "${pair%%:*}" >/dev/null 2>&1 ||
			missing="$missing ${pair#*:}"
	done
	[ -z "$missing" ] && return 0
	step "installing host tools:$missing"
	ensure_apt_lists
	DEBIAN_FRONTEND=noninteractive apt_quiet apt-get install -y $missing ||
		die "apt-get install$missing failed (see $aptlog)"
}

# Runs apt-get update if the package lists do not know the kernel.
ensure_apt_lists() {
	if ! apt-cache policy linux-image-amd64 2>/dev/null |
		grep -q 'Candidate: [0-9]'; then
		step "apt-get update (package lists missing)"
		apt_quiet apt-get update || die "apt-get update failed"
	fi
}

# Prints "Package Version" for each named package (candidate versions).
package_versions() {
	apt-cache show --no-all-versions "$@" 2>/dev/null | awk '
		/^Package: / { p = $2 }
		/^Version: / { print p, $2 }'
}

# Prints the real kernel package that linux-image-amd64 depends on.
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {
			print $2
			exit
		}'
}

# Prints the packages named plus their library dependencies, recursively
# (only lib* and zlib1g: the rest, such as python3, is not needed by the
# binaries taken).  One apt-cache call per level of the dependency tree.
library_closure() {
	seen=" "
	todo="$*"
	while [ -n "$todo" ]; do
		next=
		for p in $todo; do
			case "$seen" in *" $p "*) continue ;; esac
			seen="$seen$p "
			next="$next $p"
		done
		[ -n "$next" ] || break
		todo=$(apt-cache depends --no-recommends --no-suggests \
			--no-conflicts --no-breaks --no-replaces \
			--no-enhances $next |
			awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ {
				print $2
			}' | sed 's/:any$//' | grep -E '^(lib|zlib1g)' | sort -u)
	done
	echo $seen
}

script_hash() {
	(cd "$here" && sha256sum $IMAGE_SOURCES) | sha256sum | cut -d' ' -f1
}

# The key: every package with its version, then the hash of the sources.
compute_key() {
	package_versions $(cat "$1") linux-image-amd64 | sort
	echo "sources $(script_hash)"
}

fetch_packages() {
	mkdir -p "$out/debs"
	wanted=" "
	while read -r pkg ver; do
		file=${pkg}_$(printf '%s' "$ver" | sed 's/:/%3a/')_
		wanted="$wanted$file "
		ls "$out/debs/$file"*.deb >/dev/null 2>&1 && continue
		if ! (cd "$out/debs" && apt_quiet apt-get download \
			-o APT::Sandbox::User=root "$pkg=$ver"); then
			step "apt-get update (download of $pkg failed)"
			apt_quiet apt-get update || die "apt-get update failed"
			(cd "$out/debs" && apt_quiet apt-get download \
				-o APT::Sandbox::User=root "$pkg") ||
				die "cannot download $pkg (see $aptlog)"
		fi
	done <<EOF
$(package_versions $(cat "$out/packages.new"))
EOF
	# Drop packages of older builds.
	for f in "$out/debs"/*.deb; do
		base=${f##*/}
		keep=
		for w in $wanted; do
			case "$base" in "$w"*) keep=1 ;; esac
		done
		[ -n "$keep" ] || rm -f "$f"
	done
}

unpack_packages() {
	rm -rf "$out/stage"
	mkdir -p "$out/stage"
	for f in "$out/debs"/*.deb; do
		dpkg-deb -x "$f" "$out/stage"
	done
}

# The protected-mode part of a bzImage starts at (setup_sects + 1) * 512;
# the setup header gives the compressed payload's offset and length within
# it (Linux boot protocol, fields at 0x1f1, 0x248 and 0x24c).
extract_vmlinux() {
	bz=$(ls "$out"/stage/boot/vmlinuz-* | head -n 1)
	field() { od -An -t "u$2" -j "$1" -N "$2" "$bz" | tr -d ' '; }
	setup_sects=$(field $((0x1f1)) 1)
	[ "$setup_sects" -eq 0 ] && setup_sects=4
	offset=$(( (setup_sects + 1) * 512 + $(field $((0x248)) 4) ))
	length=$(field $((0x24c)) 4)
	magic=$(od -An -t x1 -j "$offset" -N 6 "$bz" | tr -d ' ')
	[ "$magic" = fd377a585a00 ] || die "kernel payload is not xz ($magic)"
	tail -c "+$((offset + 1))" "$bz" | head -c "$length" |
		xz -dc --single-stream >"$out/vmlinux.tmp"
	[ "$(od -An -c -N 4 "$out/vmlinux.tmp" | tr -d ' ')" = '177ELF' ] ||
		die "extracted kernel is not an ELF file"
	mv "$out/vmlinux.tmp" "$out/vmlinux"
}

extract_xen() {
	gz=$out/stage/boot/xen-4.17-amd64.gz
	[ -f "$gz" ] || die "no $gz in xen-hypervisor-4.17-amd64"
	zcat "$gz" >"$out/xen.tmp"
	mv "$out/xen.tmp" "$out/xen"
}

# Copies a shared library and, recursively, what it needs, looked up in
# the unpacked packages (never on the host).
copy_with_libraries() {
	for f in "$@"; do
		for soname in $(readelf -d "$f" 2>/dev/null |
			sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			copy_library "$soname"
		done
	done
}

copy_library() {
	for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
		[ -e "$root/$d/$1" ] && return 0
		if [ -e "$out/stage/$d/$1" ]; then
			mkdir -p "$root/$d"
			cp -L "$out/stage/$d/$1" "$root/$d/$1"
			copy_with_libraries "$root/$d/$1"
			return 0
		fi
	done
	die "library $1 not found in the packages"
}

build_follow() {
	gcc -O2 -Wall -Wextra -Werror -ffreestanding -fno-stack-protector \
		-fno-pie -no-pie -nostdlib -static -Wl,--build-id=none \
		"$here/follow.c" -o "$root/bin/follow"
}

assemble_root() {
	root=$out/root
	rm -rf "$root"
	mkdir -p "$root/bin" "$root/lib/modules" "$root/usr/lib/xen-4.17/bin" \
		"$root/usr/bin" "$root/etc/xen/scripts" "$root/lib64" \
		"$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp" \
		"$root/var/lib" "$root/var/log" "$root/jobs" "$root/usr/lib/xenjob"
	ln -s ../run "$root/var/run"
	ln -s ../run/lock "$root/var/lock"

	cp "$out/stage/bin/busybox" "$root/bin/busybox"
	for applet in $("$root/bin/busybox" --list); do
		[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
	done

	xenbin=usr/lib/xen-4.17/bin
	for b in $XEN_BINARIES; do
		cp "$out/stage/$xenbin/$b" "$root/$xenbin/$b"
	done
	# xenstore-utils is one binary that acts by the name it is run as.
	cp "$out/stage/usr/bin/xenstore" "$root/usr/bin/xenstore"
	for t in read write rm list ls exists chmod watch; do
		ln -s xenstore "$root/usr/bin/xenstore-$t"
	done

	copy_library ld-linux-x86-64.so.2
	ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \
		"$root/lib64/ld-linux-x86-64.so.2"
	# glibc loads libgcc_s at run time (ldd does not list it); xl needs it.
	copy_library libgcc_s.so.1
	# socat forwards the runner's host ports to guests (--forward).
	cp "$out/stage/usr/bin/socat" "$root/usr/bin/socat"
	# dnsmasq is a DNS server for the guests' name lookups (drivers start it).
	cp "$out/stage/usr/sbin/dnsmasq" "$root/usr/bin/dnsmasq"
	copy_with_libraries "$root/$xenbin"/* "$root/usr/bin/xenstore" \
		"$root/usr/bin/socat" "$root/usr/bin/dnsmasq"

	for m in $MODULES; do
		ko=$(find "$out/stage/lib/modules" -name "$m.ko" | head -n 1)
		[ -n "$ko" ] || die "module $m not found"
		cp "$ko" "$root/lib/modules/"
	done

	cp "$here/init" "$root/init"
	cp "$here/vif-bridge" "$root/etc/xen/scripts/vif-bridge"
	cp "$here/block" "$root/etc/xen/scripts/block"
	cp "$here/driver-lib.sh" "$root/usr/lib/xenjob/driver-lib.sh"
	# dnsmasq gives up its privileges to nobody and stops if no such user exists.
	printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
		>"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	# xl reads this file first and complains on every call if it is absent.
	echo "# xl defaults: none (ci/dom0/build.sh)" >"$root/etc/xen/xl.conf"
	chmod 755 "$root/init" "$root/etc/xen/scripts/vif-bridge" \
		"$root/etc/xen/scripts/block"
	build_follow
}

# The same inputs give the same archive: fixed times, owners and inodes.
make_cpio() {
	find "$root" -exec touch -h -d @0 {} +
	(cd "$root" && find . | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --reproducible --quiet) \
		>"$out/initrd.cpio.tmp"
	mv "$out/initrd.cpio.tmp" "$out/initrd.cpio"
}

: >"$aptlog"
ensure_host_tools
ensure_apt_lists

# Quick check first: the versions of the packages of the last build.
if [ -f "$out/key" ] && [ -f "$out/packages" ] && [ -f "$out/xen" ] &&
	[ -f "$out/vmlinux" ] &&
	[ -f "$out/initrd.cpio" ] &&
	[ "$(compute_key "$out/packages")" = "$(cat "$out/key")" ]; then
	step "up to date ($out)"
	exit 0
fi

step "resolving packages"
kpkg=$(kernel_package)
[ -n "$kpkg" ] || die "linux-image-amd64 has no kernel package"
library_closure $ROOT_PACKAGES | tr ' ' '\n' | sed '/^$/d' >"$out/packages.new"
echo "$kpkg" >>"$out/packages.new"
step "$(wc -l <"$out/packages.new") packages, kernel $kpkg"

step "downloading packages into $out/debs"
fetch_packages
step "unpacking"
unpack_packages
step "extracting xen and vmlinux"
extract_xen
extract_vmlinux
step "assembling the initramfs"
assemble_root
make_cpio
rm -rf "$out/stage"

mv "$out/packages.new" "$out/packages"
compute_key "$out/packages" >"$out/key"
step "built $out/xen, $out/vmlinux, $out/initrd.cpio" \
	"($(wc -c <"$out/initrd.cpio") bytes)"
