#!/usr/bin/env bash
# guest.sh: run a command under one of Debian's kernels in qemu (TCG), in a guest whose root
# is the host's own root (9p, read-only) under a tmpfs overlay, so the guest sees the same
# files, tools and build as the host and may write anywhere (writes vanish with the guest).
#
#   guest.sh fetch VERSION...
#       Download and unpack the newest linux-image-VERSION*-amd64 from Debian's archive
#       into the cache (KCM_KERNEL_CACHE, default /var/cache/kcm-bpf-kernels) and build
#       its initramfs. VERSION: 5.10 (bullseye), 6.1 (bookworm), 6.12 (trixie or
#       bookworm-backports), or an exact ABI such as 6.1.0-50 or 6.12.118+deb12.
#   guest.sh list
#       The kernels in the cache.
#   guest.sh run VERSION [--timeout SEC] [--mem MB] [--cpus N] [--env NAME[=VALUE]]...
#                [--rw DIR]... [--console] -- COMMAND...
#       Boot that kernel (fetched first if missing) and run COMMAND as root in the guest,
#       in the current directory. The command's stdout and stderr come out live on ours;
#       we exit with its exit code, 124 when it ran past --timeout (default 3600), and
#       125 when the guest died or hung (kernel panic, oops, soft lockup, no answer),
#       after printing the last lines of the guest's console. 2: usage or setup error.
#       The guest's writes go to a tmpfs and vanish, except in each --rw DIR (the host's
#       directory, shared writable at the same path). --env passes variables (NAME alone:
#       the host's value); the guest starts with a clean environment otherwise.
#
# Environment: KCM_KERNEL_CACHE (cache dir), KCM_GUEST_APPEND (more kernel parameters),
# KCM_GUEST_CONSOLE=1 (stream the guest's kernel console to stderr, like --console),
# KCM_GUEST_KEEP=1 (keep the run dir with console.log), KCM_GUEST_BOOT_MARGIN (seconds
# on top of --timeout before the guest counts as hung, default 120),
# KCM_GUEST_CGROUP2 (where the guest mounts cgroup v2; default: where the host has it),
# KCM_GUEST_TIMING=1 (print boot and command times after the run), KCM_TEST_SCALE (what
# the suites multiply their bounds on CPU time and latency by in the guest, default 5).
#
# Needs (Debian): qemu-system-x86, busybox-static; apt-get, dpkg-deb, depmod (kmod), xz-utils.
# The archive's address is read from the machine's apt configuration at run time.
set -euo pipefail

CACHE=${KCM_KERNEL_CACHE:-/var/cache/kcm-bpf-kernels}
case $CACHE in /*) ;; *) CACHE=$PWD/$CACHE ;; esac
PROG=guest.sh
# Modules the initramfs needs to reach the root: whatever of these is not built in is
# loaded, with its dependencies, from the kernel package's own modules.
BOOT_MODULES="virtio_pci 9pnet_virtio 9p overlay"
# Suites searched for kernels: name and which archive (main or security) holds it.
SUITES="bullseye:main bullseye-updates:main bullseye-security:security
bookworm:main bookworm-updates:main bookworm-security:security bookworm-backports:main
trixie:main trixie-updates:main trixie-security:security"

die() { echo "$PROG: $*" >&2; exit 2; }
note() { echo "$PROG: $*" >&2; }

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

# ---------------------------------------------------------------- apt, privately

# archive_uris: set MAIN_URI and SEC_URI from the machine's apt sources.
archive_uris() {
	MAIN_URI='' SEC_URI=''
	local f line key val uris='' suites=''
	flush() {
		local u
		for u in $uris; do
			case " $suites " in
			*-security\ *) [ -n "$SEC_URI" ] || SEC_URI=$u ;;
			*) [ -n "$MAIN_URI" ] || MAIN_URI=$u ;;
			esac
		done
		uris='' suites=''
	}
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		while IFS= read -r line || [ -n "$line" ]; do
			case $line in
			'') flush ;;
			'#'*) ;;
			*:*)
				key=${line%%:*} val=${line#*:}
				case ${key,,} in
				uris) uris=$val ;;
				suites) suites=$val ;;
				esac
				;;
			esac
		done <"$f"
		flush
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		# deb [options] URI SUITE COMPONENTS...
		local typ rest
		while read -r typ rest; do
			[ "$typ" = deb ] || continue
			rest=$(sed -E 's/^\[[^]]*\][[:space:]]*//' <<<"$rest")
			read -r uris suites _ <<<"$rest"
			flush
		done <"$f"
	done
	[ -n "$MAIN_URI" ] || die "no Debian archive found in the apt sources under /etc/apt"
	MAIN_URI=${MAIN_URI%/}
	[ -n "$SEC_URI" ] || SEC_URI=${MAIN_URI%/debian}/debian-security
	SEC_URI=${SEC_URI%/}
}

APT_DIR=$CACHE/apt
SRC_LIST=
apt_opts() {
	APT=(-o "Dir::Etc::sourcelist=$SRC_LIST" -o Dir::Etc::sourceparts=/nonexistent
		-o "Dir::State=$APT_DIR/state" -o "Dir::Cache=$APT_DIR/cache"
		-o Dir::State::status=/dev/null -o APT::Get::List-Cleanup=0
		-o Acquire::Languages=none -o APT::Architecture=amd64 -o APT::Architectures=amd64
		-o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq)
}

# apt_setup: a private sources list (a temporary file) and state under $APT_DIR; the
# machine's own apt lists and state are not touched. Refreshes the lists when asked.
apt_setup() {
	archive_uris
	mkdir -p "$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial"
	SRC_LIST=$(mktemp "$APT_DIR/sources.XXXXXX")
	local s name where key=/usr/share/keyrings/debian-archive-keyring.gpg opt=
	[ -r "$key" ] && opt="[signed-by=$key] "
	for s in $SUITES; do
		name=${s%%:*} where=${s#*:}
		if [ "$where" = security ]; then
			echo "deb ${opt}$SEC_URI $name main"
		else
			echo "deb ${opt}$MAIN_URI $name main"
		fi
	done >"$SRC_LIST"
	apt_opts
}

apt_cleanup() { [ -z "$SRC_LIST" ] || rm -f "$SRC_LIST"; }

apt_update() {
	note "updating the package lists (private apt state in $APT_DIR)"
	if ! apt-get "${APT[@]}" update >"$APT_DIR/update.log" 2>&1; then
		# A missing suite (e.g. one moved to the archive of old releases) is not fatal
		# as long as the others came in.
		grep -E '^(E|W):' "$APT_DIR/update.log" >&2 || true
		ls "$APT_DIR"/state/lists/*_Packages* >/dev/null 2>&1 ||
			die "apt-get update failed, see $APT_DIR/update.log"
	fi
}

# resolve VERSION: set PKG, PKGVER, PKGSUITE to the newest image package for VERSION.
resolve() {
	local want=$1 names=() n abi line ver best='' bestver='' bestsrc=''
	if [[ $want == linux-image-* ]]; then
		names=("$want")
	else
		while IFS= read -r n; do
			abi=${n#linux-image-} abi=${abi%-amd64}
			case $abi in
			"$want" | "$want".* | "$want"-* | "$want"+*) names+=("$n") ;;
			esac
		done < <(apt-cache "${APT[@]}" pkgnames linux-image- |
			grep -E '^linux-image-[0-9]+\.[0-9]+(\.[0-9]+)?(-[0-9]+|\+deb[0-9.]+)-amd64$' || true)
	fi
	[ ${#names[@]} -gt 0 ] || die "no linux-image package for '$want' in the archive"
	# madison: "name | version | URI suite/main amd64 Packages", only real packages.
	while IFS='|' read -r n ver line; do
		n=${n// /} ver=${ver// /}
		[ -n "$ver" ] || continue
		if [ -z "$bestver" ] || dpkg --compare-versions "$ver" gt "$bestver"; then
			best=$n bestver=$ver bestsrc=$(awk '{print $2}' <<<"$line")
		fi
	done < <(apt-cache "${APT[@]}" madison "${names[@]}" 2>/dev/null || true)
	[ -n "$best" ] || die "no downloadable linux-image package for '$want' (names: ${names[*]})"
	PKG=$best PKGVER=$bestver PKGSUITE=${bestsrc%%/*}
}

# ---------------------------------------------------------------- fetch

modname() { local b=${1##*/}; b=${b%%.ko*}; echo "${b//-/_}"; }

# boot_modules DIR KVER: print, dependencies first, the module files (relative to the
# modules dir) that BOOT_MODULES need; built-in ones are skipped.
boot_modules() {
	local moddir=$1/lib/modules/$2 line key deps m
	declare -A DEP=() PATHOF=() SEEN=()
	while IFS= read -r line; do
		key=${line%%:*} deps=${line#*:}
		m=$(modname "$key")
		PATHOF[$m]=$key DEP[$m]=$deps
	done <"$moddir/modules.dep"
	ORDER=()
	visit() {
		local m=$1 d
		[ -z "${SEEN[$m]:-}" ] || return 0
		SEEN[$m]=1
		for d in ${DEP[$m]}; do visit "$(modname "$d")"; done
		ORDER+=("${PATHOF[$m]}")
	}
	for m in $BOOT_MODULES; do
		if [ -n "${PATHOF[$m]:-}" ]; then
			visit "$m"
		elif ! grep -qE "/${m//_/[-_]}\.ko\$" "$moddir/modules.builtin"; then
			die "kernel $2 has module $m neither as a module nor built in"
		fi
	done
	printf '%s\n' "${ORDER[@]}"
}

# initramfs_init: the initramfs's /init (stage 1, busybox). It loads the 9p and overlay
# modules, mounts the host's root read-only under a tmpfs overlay, the run dir (the
# second 9p share, writable), the kernel file systems the tests need, and hands over to
# stage 2 (the run dir's stage2, run by the host's bash). Parameters come from the run
# dir's env file, so one initramfs serves every run.
initramfs_init() {
	cat <<'EOF'
#!/bin/sh
export PATH=/bin
N=/newroot
fail() { echo "initramfs: $*"; echo o >/proc/sysrq-trigger; sleep 5; }
D=/dev
mark() { echo "kcm-guest: $*" >$D/kmsg; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do
	insmod /modules/$m || fail "insmod $m failed"
done
mark "initramfs: modules loaded"
# The root: cached (the host does not change it under a run). The run dir: not cached,
# what the guest writes there is on the host at once.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /lower ||
	fail "cannot mount the host's root over 9p"
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work $N ||
	fail "cannot mount the overlay"
mount -t tmpfs -o mode=0755,nosuid,nodev run $N/run
mkdir -p $N/run/kcm-guest
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 kcmrun $N/run/kcm-guest ||
	fail "cannot mount the run dir over 9p"
# CG (cgroup2 mount point), MODDIR (the kernel's modules on the host), LIBMOD (the host's
# real /lib/modules), KVER.
. $N/run/kcm-guest/env
mount --move /dev $N/dev
D=$N/dev
mount --move /proc $N/proc
mount --move /sys $N/sys
mkdir -p $N/dev/pts $N/dev/shm
ln -sf /proc/self/fd $N/dev/fd
ln -sf /proc/self/fd/0 $N/dev/stdin
ln -sf /proc/self/fd/1 $N/dev/stdout
ln -sf /proc/self/fd/2 $N/dev/stderr
ln -sf /proc/kcore $N/dev/core
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $N/dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm $N/dev/shm
mount -t tmpfs -o mode=1777,nosuid,nodev tmp $N/tmp
mount -t bpf bpf $N/sys/fs/bpf
mount -t debugfs debugfs $N/sys/kernel/debug 2>/dev/null
[ ! -d $N/sys/kernel/tracing ] || mount -t tracefs tracefs $N/sys/kernel/tracing 2>/dev/null
mount -t configfs configfs $N/sys/kernel/config 2>/dev/null
case $CG in
/sys/fs/cgroup/?*)
	mount -t tmpfs -o mode=755 cgroup $N/sys/fs/cgroup
	mkdir -p $N$CG
	;;
esac
mount -t cgroup2 -o nsdelegate cgroup2 $N$CG 2>/dev/null || mount -t cgroup2 cgroup2 $N$CG
# The kernel's own modules where modprobe looks for them.
mkdir -p $N$LIBMOD/$KVER
mount -o bind $N$MODDIR $N$LIBMOD/$KVER
hostname kcm-guest
ip link set lo up
# ttyS1 and ttyS2 carry the command's stdout and stderr to the host.
stty -F $D/ttyS1 raw -echo
stty -F $D/ttyS2 raw -echo
mkfifo $N/run/kcm-out $N/run/kcm-err
i=0
for d in $RW; do
	mkdir -p $N$d
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 rw$i $N$d || fail "cannot mount $d"
	i=$((i + 1))
done
mark "initramfs: done"
exec switch_root $N /bin/bash /run/kcm-guest/stage2
EOF
}

initramfs_stamp() { { initramfs_init; echo "$BOOT_MODULES"; } | md5sum | cut -d' ' -f1; }

# build_initramfs DIR KVER: DIR/initramfs.img with busybox, the boot modules and /init.
build_initramfs() {
	local dir=$1 kver=$2 ir f i=0 name a
	ir=$(mktemp -d "$dir/.initramfs.XXXXXX")
	mkdir -p "$ir"/{bin,dev,proc,sys,lower,rw,newroot,modules}
	cp /bin/busybox "$ir/bin/busybox" 2>/dev/null || die "no /bin/busybox: apt-get install busybox-static"
	! ldd "$ir/bin/busybox" >/dev/null 2>&1 || die "/bin/busybox is not static: apt-get install busybox-static"
	for a in sh mount mkdir mkfifo ln cat insmod hostname ip stty switch_root sleep; do
		ln -s busybox "$ir/bin/$a"
	done
	: >"$ir/modules/order"
	while IFS= read -r f; do
		[ -n "$f" ] || continue
		i=$((i + 1)) name=$(printf '%02d-%s.ko' "$i" "$(modname "$f")")
		case $f in
		*.ko) cp "$dir/lib/modules/$kver/$f" "$ir/modules/$name" ;;
		*.ko.xz) xz -dc "$dir/lib/modules/$kver/$f" >"$ir/modules/$name" ;;
		*.ko.zst) zstd -qdc "$dir/lib/modules/$kver/$f" >"$ir/modules/$name" ;;
		*.ko.gz) gzip -dc "$dir/lib/modules/$kver/$f" >"$ir/modules/$name" ;;
		*) die "unknown module file $f" ;;
		esac
		echo "$name" >>"$ir/modules/order"
	done < <(boot_modules "$dir" "$kver")
	initramfs_init >"$ir/init"
	chmod 755 "$ir/init"
	(cd "$ir" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$dir/initramfs.img.tmp"
	rm -rf "$ir"
	mv -f "$dir/initramfs.img.tmp" "$dir/initramfs.img"
	initramfs_stamp >"$dir/initramfs.stamp"
}

# extract_vmlinux DIR: DIR/vmlinux, the uncompressed ELF kernel from DIR/vmlinuz. qemu
# boots it through its PVH entry (CONFIG_PVH) and skips the decompression, which takes
# seconds under TCG. Without it, runs boot DIR/vmlinuz.
extract_vmlinux() {
	local dir=$1 magic tool off
	grep -q '^CONFIG_PVH=y' "$dir/config" 2>/dev/null || { touch "$dir/vmlinux.none"; return 0; }
	for magic in xz:$'\xfd7zXZ' gzip:$'\x1f\x8b\x08' zstd:$'\x28\xb5\x2f\xfd'; do
		tool=${magic%%:*}
		for off in $(LC_ALL=C grep -obUa -- "${magic#*:}" "$dir/vmlinuz" 2>/dev/null | cut -d: -f1 | head -n 5 || true); do
			case $tool in
			xz) tail -c +$((off + 1)) "$dir/vmlinuz" | xz -dc >"$dir/vmlinux.tmp" 2>/dev/null || true ;;
			gzip) tail -c +$((off + 1)) "$dir/vmlinuz" | gzip -dc >"$dir/vmlinux.tmp" 2>/dev/null || true ;;
			zstd) tail -c +$((off + 1)) "$dir/vmlinuz" | zstd -qdc >"$dir/vmlinux.tmp" 2>/dev/null || true ;;
			esac
			if [ "$(head -c 4 "$dir/vmlinux.tmp" | od -An -tx1 | tr -d ' \n' || true)" = 7f454c46 ]; then
				mv -f "$dir/vmlinux.tmp" "$dir/vmlinux"
				rm -f "$dir/vmlinux.none"
				return 0
			fi
		done
	done
	rm -f "$dir/vmlinux.tmp"
	touch "$dir/vmlinux.none"
}

# prepare DIR: bring a cached kernel's initramfs and vmlinux up to this script's version.
prepare() {
	local dir=$1 kver
	uptodate() {
		[ "$(cat "$dir/initramfs.stamp" 2>/dev/null)" = "$(initramfs_stamp)" ] &&
			{ [ -e "$dir/vmlinux" ] || [ -e "$dir/vmlinux.none" ]; }
	}
	! uptodate || return 0
	exec 8>"$CACHE/.lock"
	flock 8
	if ! uptodate; then
		kver=$(sed -n 's/.*KVER=\([^ ]*\).*/\1/p' "$dir/info")
		note "updating the initramfs and vmlinux of $kver"
		build_initramfs "$dir" "$kver"
		extract_vmlinux "$dir"
	fi
	exec 8>&-
}

fetch_one() {
	local want=$1 tmp deb kver dir link
	resolve "$want"
	link=$CACHE/$want
	if [ -e "$link/ready" ] && grep -qx "PKG=$PKG PKGVER=$PKGVER" <(sed -n 's/^\(PKG=.* PKGVER=[^ ]*\).*/\1/p' "$link/info" 2>/dev/null); then
		note "$want: $PKG $PKGVER already in $link"
		return 0
	fi
	dir=$CACHE/kernels/${PKG}_$PKGVER
	if [ ! -e "$dir/ready" ]; then
		note "$want: downloading $PKG $PKGVER ($PKGSUITE)"
		tmp=$(mktemp -d "$CACHE/kernels/.fetch.XXXXXX")
		chmod 755 "$tmp"
		(cd "$tmp" && apt-get "${APT[@]}" download "$PKG=$PKGVER") ||
			{ rm -rf "$tmp"; die "download of $PKG $PKGVER failed"; }
		deb=$(ls "$tmp"/*.deb)
		mkdir "$tmp/root"
		dpkg-deb -x "$deb" "$tmp/root"
		rm -f "$deb"
		kver=$(ls "$tmp/root/boot" | sed -n 's/^vmlinuz-//p' | head -n1)
		[ -n "$kver" ] || { rm -rf "$tmp"; die "$PKG has no /boot/vmlinuz-*"; }
		# The kernel and its modules at DIR/vmlinuz and DIR/lib/modules/KVER.
		mv "$tmp/root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
		[ ! -f "$tmp/root/boot/config-$kver" ] || mv "$tmp/root/boot/config-$kver" "$tmp/config"
		[ ! -f "$tmp/root/boot/System.map-$kver" ] || mv "$tmp/root/boot/System.map-$kver" "$tmp/System.map"
		mkdir -p "$tmp/lib/modules"
		if [ -d "$tmp/root/lib/modules/$kver" ]; then
			mv "$tmp/root/lib/modules/$kver" "$tmp/lib/modules/"
		elif [ -d "$tmp/root/usr/lib/modules/$kver" ]; then
			mv "$tmp/root/usr/lib/modules/$kver" "$tmp/lib/modules/"
		else
			rm -rf "$tmp"
			die "$PKG has no modules dir for $kver"
		fi
		rm -rf "$tmp/root"
		if [ -f "$tmp/System.map" ]; then
			depmod -b "$tmp" -F "$tmp/System.map" "$kver"
		else
			depmod -b "$tmp" "$kver"
		fi
		build_initramfs "$tmp" "$kver"
		extract_vmlinux "$tmp"
		echo "PKG=$PKG PKGVER=$PKGVER SUITE=$PKGSUITE KVER=$kver" >"$tmp/info"
		touch "$tmp/ready"
		rm -rf "$dir"
		mv -T "$tmp" "$dir"
	fi
	ln -sfn "kernels/${PKG}_$PKGVER" "$CACHE/.link.$$"
	mv -T "$CACHE/.link.$$" "$link"
	note "$want: $(cat "$dir/info") in $link"
}

cmd_fetch() {
	[ $# -gt 0 ] || usage
	mkdir -p "$CACHE/kernels"
	trap apt_cleanup EXIT
	# One fetch at a time per cache (apt state, downloads).
	exec 9>"$CACHE/.lock"
	flock 9
	apt_setup
	apt_update
	local v
	for v in "$@"; do fetch_one "$v"; done
}

cmd_list() {
	local l
	for l in "$CACHE"/*; do
		[ -L "$l" ] && [ -e "$l/ready" ] && echo "${l##*/}: $(cat "$l/info")"
	done
	return 0
}

# ---------------------------------------------------------------- run

RUNDIR='' QPID='' OUTPID='' ERRPID='' TAILPID=''
run_cleanup() {
	local p
	for p in $QPID $TAILPID; do kill "$p" 2>/dev/null || true; done
	for p in $OUTPID $ERRPID; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "$RUNDIR" ] && [ -d "$RUNDIR" ]; then
		if [ "${KCM_GUEST_KEEP:-0}" = 1 ]; then
			note "run dir kept: $RUNDIR"
		else
			rm -rf "$RUNDIR"
		fi
	fi
}

# The host's cgroup v2 mount point (the guest mounts it at the same place).
host_cgroup2() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts 2>/dev/null
}

cmd_run() {
	local want=${1:-} timeout=3600 mem=2048 cpus=2 console=${KCM_GUEST_CONSOLE:-0} envs=() e rws=() d
	local shares=()
	[ -n "$want" ] || usage
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--timeout) timeout=${2:?}; shift 2 ;;
		--mem) mem=${2:?}; shift 2 ;;
		--cpus) cpus=${2:?}; shift 2 ;;
		--env) envs+=("${2:?}"); shift 2 ;;
		--console) console=1; shift ;;
		--rw) rws+=("$(readlink -f "${2:?}")"); shift 2 ;;
		--) shift; break ;;
		*) die "unknown option $1 (the command follows --)" ;;
		esac
	done
	[ $# -gt 0 ] || die "no command (guest.sh run VERSION [options] -- COMMAND...)"
	# The guest mounts fresh tmpfs on /tmp, /run and /dev/shm: a working directory under
	# one of them (a clone in mktemp -d, say) is shared through as it is with --rw.
	case $(readlink -f "$PWD")/ in
	/tmp/* | /run/* | /dev/shm/*) rws+=("$(readlink -f "$PWD")") ;;
	esac
	for d in "${rws[@]}"; do
		[ -d "$d" ] || die "--rw $d: not a directory"
		[[ $d != *[[:space:],]* ]] || die "--rw $d: no spaces or commas in shared paths"
	done
	[[ $timeout =~ ^[0-9]+$ && $mem =~ ^[0-9]+$ && $cpus =~ ^[0-9]+$ ]] || die "--timeout, --mem, --cpus take numbers"
	command -v qemu-system-x86_64 >/dev/null || die "no qemu-system-x86_64: apt-get install qemu-system-x86"

	local kdir=$CACHE/$want
	if [ ! -e "$kdir/ready" ]; then
		note "kernel $want not in $CACHE: fetching it"
		(cmd_fetch "$want") || exit 2
	fi
	kdir=$(readlink -f "$kdir")
	prepare "$kdir"
	local kver
	kver=$(sed -n 's/.*KVER=\([^ ]*\).*/\1/p' "$kdir/info")

	trap run_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	RUNDIR=$(mktemp -d "${TMPDIR:-/tmp}/kcm-guest.XXXXXX")
	chmod 755 "$RUNDIR"

	# The command, run by bash in the guest: environment, directory, argv.
	{
		echo "export HOME=/root TERM=dumb LANG=C.UTF-8 LC_ALL=C.UTF-8"
		echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		# the CPU is emulated (TCG): the suites widen their bounds on CPU time and latency
		echo "export KCM_TEST_SCALE=${KCM_TEST_SCALE:-5}"
		for e in "${envs[@]}"; do
			case $e in
			*=*) printf 'export %q\n' "$e" ;;
			*) [ -z "${!e+x}" ] || printf 'export %q\n' "$e=${!e}" ;;
			esac
		done
		printf 'cd -- %q || exit 126\n' "$PWD"
		printf 'exec'
		printf ' %q' "$@"
		echo
	} >"$RUNDIR/cmd"

	local cg=${KCM_GUEST_CGROUP2:-$(host_cgroup2)}
	cg=${cg:-/sys/fs/cgroup}
	# For the initramfs: where to mount cgroup2, the kernel's modules and where they go.
	{
		printf 'CG=%q\n' "$cg"
		printf 'MODDIR=%q\n' "$kdir/lib/modules/$kver"
		printf 'LIBMOD=%q\n' "$(readlink -f /lib/modules 2>/dev/null || echo /lib/modules)"
		printf 'KVER=%q\n' "$kver"
		# Host directories the guest writes through to (--rw), tags rw0, rw1...
		printf 'RW="%s"\n' "${rws[*]}"
	} >"$RUNDIR/env"
	for d in "${!rws[@]}"; do
		shares+=(-virtfs "local,path=${rws[d]},mount_tag=rw$d,security_model=none")
	done
	# Stage 2, run by the host's bash as the guest's pid 1: the command with its stdout
	# and stderr through pipes (so it does not see a terminal) to ttyS1 and ttyS2, under
	# the timeout; then its exit code to the run dir, and power off.
	cat >"$RUNDIR/stage2" <<EOF
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
R=/run/kcm-guest
ulimit -n 65536 2>/dev/null
ulimit -c 0
read -r up _ </proc/uptime
echo "start \$up" >\$R/times
echo "kcm-guest: running the command (\$up s after boot)" >/dev/kmsg
cat /run/kcm-out >/dev/ttyS1 & OUTPID=\$!
cat /run/kcm-err >/dev/ttyS2 & ERRPID=\$!
timeout -k 10 $timeout bash \$R/cmd </dev/null >/run/kcm-out 2>/run/kcm-err
rc=\$?
read -r up _ </proc/uptime
echo "end \$up" >>\$R/times
# Let the output drain; programs the command left behind may hold the pipes open.
for ((i = 0; i < 50; i++)); do
	kill -0 \$OUTPID 2>/dev/null || kill -0 \$ERRPID 2>/dev/null || break
	sleep 0.1
done
kill \$OUTPID \$ERRPID 2>/dev/null
echo \$rc >\$R/rc
echo o >/proc/sysrq-trigger
sleep 30
EOF

	mkfifo "$RUNDIR/out" "$RUNDIR/err"
	: >"$RUNDIR/console.log"
	cat "$RUNDIR/out" &
	OUTPID=$!
	cat "$RUNDIR/err" >&2 &
	ERRPID=$!
	if [ "$console" = 1 ]; then
		tail -n +1 -f "$RUNDIR/console.log" >&2 &
		TAILPID=$!
	fi

	local kernel=$kdir/vmlinuz
	[ ! -e "$kdir/vmlinux" ] || kernel=$kdir/vmlinux
	local append="console=ttyS0,115200 loglevel=7 panic=-1 oops=panic softlockup_panic=1"
	append+=" mitigations=off random.trust_cpu=on nokaslr rdinit=/init"
	append+=" ${KCM_GUEST_APPEND:-}"
	local margin=${KCM_GUEST_BOOT_MARGIN:-120} start end qrc=0
	start=$(date +%s.%N)
	timeout -k 5 $((timeout + 10 + margin)) \
		qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "$mem" -smp "$cpus" \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$kernel" -initrd "$kdir/initramfs.img" -append "$append" \
		-serial "file:$RUNDIR/console.log" -serial "file:$RUNDIR/out" -serial "file:$RUNDIR/err" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-virtfs "local,path=$RUNDIR,mount_tag=kcmrun,security_model=none" "${shares[@]}" \
		</dev/null >"$RUNDIR/qemu.log" 2>&1 &
	QPID=$!
	wait "$QPID" || qrc=$?
	QPID=
	end=$(date +%s.%N)
	# qemu is gone: the pipes' writer too; let the readers finish.
	local i
	for i in $(seq 20); do
		kill -0 "$OUTPID" 2>/dev/null || kill -0 "$ERRPID" 2>/dev/null || break
		sleep 0.1
	done
	[ -z "$TAILPID" ] || { sleep 0.2; kill "$TAILPID" 2>/dev/null || true; }

	local rc
	if [ -s "$RUNDIR/rc" ]; then
		rc=$(cat "$RUNDIR/rc")
		if grep -qE 'BUG:|WARNING:|Oops|soft lockup|hung_task|blocked for more than|workqueue lockup|rcu.*stall' "$RUNDIR/console.log"; then
			note "the guest kernel reported problems:"
			grep -E -A3 'BUG:|WARNING:|Oops|soft lockup|hung_task|blocked for more than|workqueue lockup|rcu.*stall' "$RUNDIR/console.log" | head -n 40 >&2
		fi
		[ "$rc" != 124 ] || note "the command timed out after ${timeout}s in the guest"
		if [ "${KCM_GUEST_TIMING:-0}" = 1 ]; then
			awk -v a="$start" -v b="$end" -v k="$kver" '
				/^start/ { s = $2 } /^end/ { e = $2 }
				END { printf "guest.sh: kernel %s: boot %.1fs (guest clock, to the command), command %.1fs, qemu wall %.1fs\n", k, s, e - s, b - a }' \
				"$RUNDIR/times" >&2
		fi
		exit "$rc"
	fi
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		note "the guest did not finish within ${timeout}s + ${margin}s: hung (kernel $kver). Last console lines:"
	elif grep -qE 'Kernel panic|soft lockup|Oops|BUG:' "$RUNDIR/console.log"; then
		note "the guest kernel died (kernel $kver). Last console lines:"
	else
		note "the guest ended without a result (qemu exit $qrc, kernel $kver). qemu said:"
		tail -n 20 "$RUNDIR/qemu.log" >&2
		note "last console lines:"
	fi
	tail -n 80 "$RUNDIR/console.log" | tr -d '\r' >&2
	exit 125
}

case ${1:-} in
fetch) shift; cmd_fetch "$@" ;;
run) shift; cmd_run "$@" ;;
list) cmd_list ;;
-h | --help | help | '') usage ;;
*) die "unknown command '$1' (fetch, run, list)" ;;
esac
