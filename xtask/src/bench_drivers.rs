//! The split-driver rows of `cargo xtask bench`: what a Linux domU
//! (Debian's kernel, `xen-blkfront` and `xen-netfront`) gets from our
//! backends (`xenish-blkback`, `xenish-netback`) and from Linux's
//! in-kernel ones (`xen-blkback` over a loop device, `backendtype=phy`;
//! `xen-netback`, `backendtype=kernel`), on xenish and on Xen 4.17, in
//! the same QEMU, both hypervisors booted at once.
//!
//! One boot per hypervisor, one domU with a disk and a vif on each
//! backend (identical images, both in dom0's memory). The domU measures,
//! per round and backend: sequential write and read with busybox `dd`
//! (1 MiB requests, `O_DIRECT`), 4 KiB random reads at queue depth 1
//! for a fixed time (`xenish-randread`), ping round-trip time to dom0,
//! and TCP throughput both ways with busybox `nc`. Times come from the
//! domU's `/proc/uptime` (10 ms): wall-clock under software emulation,
//! on one emulated CPU shared by dom0 and the domU, so the numbers say
//! how the backends compare under the same conditions, not what the
//! drivers do on hardware.
//!
//! The domU prints `benchdrv: BACKEND ROW key=value...` lines; dom0
//! copies them from its console log to the serial line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use tests::dom0::{self, OwnDaemons, AUTORUN_DONE};
use tests::{Boot, Outcome};

/// Measurement rounds per boot (backends alternate within a round; the
/// table shows the median of the rounds).
const ROUNDS: u32 = 3;
/// Each disk image, and what the sequential rows write and read.
const DISK_MIB: u32 = 64;
/// How long the random-read row reads.
const RANDREAD_SECS: u32 = 5;
/// Bytes of each TCP transfer.
const NET_MIB: u32 = 16;
/// Pings whose average is the round-trip row.
const PINGS: u32 = 10;

/// The backends, in the order of the table's columns: the tag the domU
/// prints and the column's name.
const BACKENDS: [(&str, &str); 2] = [("ours", "xenish-*back"), ("linux", "Linux *back")];

/// A row of the table: its key in the domU's lines, its label, its unit.
struct Row {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
}

const ROWS: &[Row] = &[
    Row { key: "blk_seq_read", label: "blkif sequential read, 1 MiB O_DIRECT", unit: "MB/s" },
    Row { key: "blk_seq_write", label: "blkif sequential write, 1 MiB O_DIRECT", unit: "MB/s" },
    Row { key: "blk_rand_read", label: "blkif random read, 4 KiB QD1 O_DIRECT", unit: "IOPS" },
    Row { key: "net_tcp_tx", label: "netif TCP domU -> dom0", unit: "Mbit/s" },
    Row { key: "net_tcp_rx", label: "netif TCP dom0 -> domU", unit: "Mbit/s" },
    Row { key: "net_ping", label: "netif ping RTT domU -> dom0 (lower is better)", unit: "ms" },
];

/// The domU's init. Its command line carries the sizes (`diskmib=`,
/// `netmib=`, `randsecs=`, `pings=`, `rounds=`).
const DOMU_INIT: &str = r#"
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m || echo "benchdrv: insmod $m failed"; done
say() { echo "benchdrv: $*"; }
# Busybox crashes now and then under QEMU's TCG (seen in this domU on Xen
# 4.17): what feeds a measurement is read again if it came out empty.
again() { for i in 1 2 3; do out=$(eval "$1") && [ -n "$out" ] && { echo "$out"; return 0; }; done; return 1; }
arg() { again "tr ' ' '\\n' < /proc/cmdline | sed -n 's/^$1=//p'"; }
ms() { again "awk '{ printf \"%d\", \$1 * 1000 }' /proc/uptime"; }
diskmib=$(arg diskmib); netmib=$(arg netmib); randsecs=$(arg randsecs); pings=$(arg pings); rounds=$(arg rounds)
for i in $(seq 300); do [ -b /dev/xvda ] && [ -b /dev/xvdb ] && [ -d /sys/class/net/eth1 ] && break; sleep 0.1; done
# TCP sizes each GSO frame to about 1 ms at its pacing rate, 2 segments
# at least: ~3 KiB on an emulated CPU. 44 segments: up to 64 KiB frames.
sysctl -w net.ipv4.tcp_min_tso_segs=44 >/dev/null
# The interface with MAC $1.
iface() { for i in /sys/class/net/eth*; do [ "$(cat $i/address)" = "$1" ] && basename $i; done; }
disk() {
    tag=$1; d=$2
    [ -b /dev/$d ] || { say "$tag: no /dev/$d"; return; }
    t0=$(ms); dd if=/dev/zero of=/dev/$d bs=1M count=$diskmib oflag=direct 2>/dev/null || say "$tag: write failed"; t1=$(ms)
    say "$tag blk_seq_write bytes=$((diskmib * 1048576)) ms=$((t1 - t0))"
    echo 3 > /proc/sys/vm/drop_caches
    t0=$(ms); dd if=/dev/$d of=/dev/null bs=1M count=$diskmib iflag=direct 2>/dev/null || say "$tag: read failed"; t1=$(ms)
    say "$tag blk_seq_read bytes=$((diskmib * 1048576)) ms=$((t1 - t0))"
    set -- $(xenish-randread /dev/$d $randsecs)
    [ "$1" = "randread:" ] && say "$tag blk_rand_read reads=$3 us=$9" || say "$tag: randread failed"
}
net() {
    tag=$1; dev=$(iface $2); port=$4
    [ -n "$dev" ] || { say "$tag: no interface with MAC $2"; return; }
    ip addr add $3/16 dev $dev && ip link set $dev up
    ping -c 3 -W 10 169.254.0.1 >/dev/null || say "$tag: ping dom0 failed"
    rtt=$(ping -c $pings 169.254.0.1 | sed -n 's|.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*|\1|p')
    [ -n "$rtt" ] && say "$tag net_ping avg_ms=$rtt"
    # dd behind nc: busybox nc alone copies in ~1 KiB system calls.
    t0=$(ms); nc 169.254.0.1 $port -e dd if=/dev/zero bs=1M count=$netmib 2>/dev/null; t1=$(ms)
    say "$tag net_tcp_tx bytes=$((netmib * 1048576)) ms=$((t1 - t0))"
    t0=$(ms); nc 169.254.0.1 $((port + 1)) -e dd of=/tmp/rx bs=1M 2>/dev/null; t1=$(ms)
    say "$tag net_tcp_rx bytes=$(wc -c < /tmp/rx) ms=$((t1 - t0))"
    rm -f /tmp/rx
    ip addr flush dev $dev; ip link set $dev down
}
r=0
while [ $r -lt $rounds ]; do
    disk ours xvda
    disk linux xvdb
    net ours 00:16:3e:00:00:11 169.254.0.11 $((5001 + 100 * r))
    net linux 00:16:3e:00:00:12 169.254.0.12 $((5011 + 100 * r))
    r=$((r + 1))
done
dmesg | grep -i "segfault\|general protection\|traps:" | sed 's/^/benchdrv: dmesg: /'
say "done"
while true; do sleep 10; done
"#;

/// dom0's script: the images, the TCP peers (per round and backend, port
/// P receives and counts, P+1 sends), the domU, then its lines.
fn script() -> String {
    format!(
        r#"
info() {{ echo "info: $*"; }}
t() {{ echo "info: t=$(cut -d' ' -f1 /proc/uptime) $*"; }}
# Busybox's tools in dom0 crash now and then under QEMU's TCG: a read of
# a log runs again if it printed nothing.
again() {{ for i in 1 2 3; do out=$(eval "$1") && [ -n "$out" ] && {{ echo "$out"; return 0; }}; done; return 1; }}
log=/var/log/xen/console/guest-bench.log
dd if=/dev/zero of=/tmp/ours.img bs=1M count={DISK_MIB} 2>/dev/null
cp /tmp/ours.img /tmp/linux.img
sysctl -w net.ipv4.tcp_min_tso_segs=44 >/dev/null
r=0
while [ $r -lt {ROUNDS} ]; do
    for p in $((5001 + 100 * r)) $((5011 + 100 * r)); do
        (nc -l -p $p -e dd of=/tmp/rx-$p.bin bs=1M 2>/dev/null; wc -c < /tmp/rx-$p.bin > /tmp/rx-$p; rm /tmp/rx-$p.bin) &
        nc -l -p $((p + 1)) -e dd if=/dev/zero bs=1M count={NET_MIB} 2>/dev/null &
    done
    r=$((r + 1))
done
cat > /etc/xen/bench.cfg <<EOF
name = "bench"
kernel = "/root/vmlinuz"
ramdisk = "/root/domu.cpio"
extra = "console=hvc0 quiet diskmib={DISK_MIB} netmib={NET_MIB} randsecs={RANDREAD_SECS} pings={PINGS} rounds={ROUNDS}"
memory = 256
disk = [ 'vdev=xvda, target=/tmp/ours.img', 'vdev=xvdb, backendtype=phy, target=/tmp/linux.img' ]
vif = [ 'mac=00:16:3e:00:00:11,ip=169.254.0.11', 'mac=00:16:3e:00:00:12,ip=169.254.0.12,backendtype=kernel' ]
EOF
t "domU created"
xl create /etc/xen/bench.cfg || info "xl create failed"
n=0
until grep -q "benchdrv: done" $log 2>/dev/null || [ $n -ge 1500 ]; do
    sleep 1; n=$((n + 1))
    [ $((n % 60)) = 0 ] && info "progress: $(grep -c 'benchdrv: ' $log 2>/dev/null) domU lines after $n s"
done
t "domU done"
again "grep 'benchdrv: ' $log"
for f in /tmp/rx-*; do info "dom0 received $(cat $f) bytes on port ${{f#/tmp/rx-}}"; done
xl destroy bench
grep -i "persistent\|segments\|queue\|indirect" /var/log/xen/xenish-blkback.log | tail -8 | sed 's/^/info: blkback: /'
tail -8 /var/log/xen/xenish-netback.log | sed 's/^/info: netback: /'
dmesg | grep -i "segfault\|traps:" | sed 's/^/info: dom0 dmesg: /'
"#
    )
}

/// Files for dom0's image: path, mode, contents.
type Files = Vec<(&'static str, u32, Vec<u8>)>;

/// One boot's measurements: (backend, row) to the values of its rounds.
type Measured = BTreeMap<(String, String), Vec<f64>>;

/// The value of one `benchdrv:` line in its row's unit: MB/s from
/// `bytes=`/`ms=` (Mbit/s for the TCP rows), IOPS from `reads=`/`us=`,
/// ms from `avg_ms=`. `None` for a line that measured nothing.
fn value(row: &str, fields: &BTreeMap<&str, f64>) -> Option<f64> {
    let v = if let (Some(bytes), Some(ms)) = (fields.get("bytes"), fields.get("ms")) {
        let mb_s = bytes / 1e6 / (ms / 1e3);
        if row.starts_with("net_tcp") {
            mb_s * 8.0
        } else {
            mb_s
        }
    } else if let (Some(reads), Some(us)) = (fields.get("reads"), fields.get("us")) {
        reads / (us / 1e6)
    } else {
        *fields.get("avg_ms")?
    };
    (v.is_finite() && v > 0.0).then_some(v)
}

/// Reads the `benchdrv: BACKEND ROW key=value...` lines of a serial log
/// (dom0 copies them from the domU's console log, after any prefix).
fn parse(serial: &str) -> Measured {
    let mut out = Measured::new();
    for line in serial.lines() {
        let Some(rest) = line.split("benchdrv: ").nth(1) else { continue };
        let mut words = rest.split_whitespace();
        let (Some(backend), Some(row)) = (words.next(), words.next()) else { continue };
        if !BACKENDS.iter().any(|(b, _)| *b == backend) || !ROWS.iter().any(|r| r.key == row) {
            continue;
        }
        let fields: BTreeMap<&str, f64> =
            words.filter_map(|w| w.split_once('=')).filter_map(|(k, v)| Some((k, v.parse().ok()?))).collect();
        if let Some(v) = value(row, &fields) {
            out.entry((backend.to_string(), row.to_string())).or_default().push(v);
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Everything dom0 needs: Debian's kernel and the domU's initramfs with
/// `xenish-randread`.
fn files(tools: &std::path::Path) -> Result<Files, String> {
    let vmlinuz = tests::debian::linux()?;
    let kernel = std::fs::read(&vmlinuz).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
    let randread_path = tools.join("xenish-randread");
    let randread = std::fs::read(&randread_path).map_err(|e| format!("{}: {e}", randread_path.display()))?;
    let initrd = tests::compare::domu_initramfs_with(
        &["xen-blkfront", "xen-netfront"],
        DOMU_INIT,
        &[("bin/xenish-randread", 0o755, &randread)],
    )?;
    Ok(vec![("root/vmlinuz", 0o644, kernel), ("root/domu.cpio", 0o644, initrd)])
}

/// One boot of the dom0 image with the script on `hypervisor`.
fn boot(name: &str, hypervisor: PathBuf, cmdline: &str, extra: &[(&str, u32, Vec<u8>)]) -> Result<Outcome, String> {
    let image = dom0::image_with(name, Some(&script()), extra, OwnDaemons::Start)?;
    let out = Boot::with_hypervisor(hypervisor)
        .cpu(&format!("{},-fsgsbase", tests::linux::CPU))
        .memory_mib(1280)
        .cmdline(cmdline)
        .module(image.kernel, dom0::KERNEL_CMDLINE)
        .module(image.initrd, "")
        .until(AUTORUN_DONE)
        .timeout(Duration::from_secs(1200))
        .try_run()?;
    let logs = tests::images::target_dir().join("bench");
    let _ = std::fs::create_dir_all(&logs);
    let _ = std::fs::write(logs.join(format!("{name}.log")), &out.serial);
    eprintln!("xtask bench: {name}: {:.0?}, serial log in {}/{name}.log", out.elapsed, logs.display());
    if !out.serial.contains(AUTORUN_DONE) {
        eprintln!("xtask bench: {name}: dom0's script did not finish ({})", out.exit);
    }
    Ok(out)
}

/// A ratio `a / b`, or `-` when either is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

fn show(v: Option<f64>) -> String {
    match v {
        None => "missing".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The table: per row, each hypervisor's two backends and ours / Linux's,
/// then xenish / Xen for each backend. Returns (Markdown, JSON array
/// items).
fn table(xenish: &Measured, xen: &Measured) -> (String, String) {
    let get = |m: &Measured, backend: &str, row: &str| {
        m.get(&(backend.to_string(), row.to_string())).cloned().and_then(median)
    };
    let mut md = format!(
        "\n| split drivers, Linux domU (median of {ROUNDS} rounds) | unit | xenish: {ours} | xenish: {linux} | ours / Linux | \
         Xen 4.17: {ours} | Xen 4.17: {linux} | ours / Linux | xenish / Xen ({ours}) | xenish / Xen ({linux}) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        ours = BACKENDS[0].1,
        linux = BACKENDS[1].1
    );
    let mut json = String::new();
    println!(
        "\n{:<46} {:>7} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>7} {:>7}",
        "split drivers (xenish | Xen 4.17)", "unit", "ours", "Linux", "o/L", "ours", "Linux", "o/L", "xn/Xen", "xn/Xen"
    );
    for (n, row) in ROWS.iter().enumerate() {
        let (xo, xl) = (get(xenish, "ours", row.key), get(xenish, "linux", row.key));
        let (yo, yl) = (get(xen, "ours", row.key), get(xen, "linux", row.key));
        let cells =
            [show(xo), show(xl), ratio(xo, xl), show(yo), show(yl), ratio(yo, yl), ratio(xo, yo), ratio(xl, yl)];
        println!(
            "{:<46} {:>7} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>7} {:>7}",
            row.label, row.unit, cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7]
        );
        let _ = writeln!(md, "| {} | {} | {} |", row.label, row.unit, cells.join(" | "));
        let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        let sep = if n + 1 == ROWS.len() { "" } else { "," };
        let _ = writeln!(
            json,
            "    {{ \"row\": \"{}\", \"unit\": \"{}\", \"xenish\": {{ \"ours\": {}, \"linux\": {} }}, \
             \"xen\": {{ \"ours\": {}, \"linux\": {} }} }}{sep}",
            row.key,
            row.unit,
            num(xo),
            num(xl),
            num(yo),
            num(yl)
        );
    }
    (md, json)
}

/// Boots both hypervisors at once and returns the table (Markdown, JSON
/// array items) after printing it. `tools` holds the built `dom0-tools`.
pub fn run(xenish: PathBuf, xen: PathBuf, tools: &std::path::Path) -> Result<(String, String), String> {
    let extra = files(tools)?;
    eprintln!("xtask bench: split drivers from a Linux domU, on xenish and on Xen 4.17 at once");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| boot("bench-drivers-xenish", xenish, "dom0_mem=512M", &extra));
        let b = s
            .spawn(|| boot("bench-drivers-xen", xen, &format!("{} dom0_mem=512M", tests::debian::XEN_CMDLINE), &extra));
        (a.join(), b.join())
    });
    let a = a.map_err(|_| "the xenish boot thread panicked".to_string())??;
    let b = b.map_err(|_| "the Xen boot thread panicked".to_string())??;
    for (hv, out) in [("xenish", &a), ("Xen 4.17", &b)] {
        for l in out.serial.lines().filter(|l| l.contains("info: ")) {
            eprintln!("  {hv}: {}", &l[l.find("info: ").unwrap_or(0)..]);
        }
    }
    Ok(table(&parse(&a.serial), &parse(&b.serial)))
}

#[cfg(test)]
mod tests_ {
    use super::*;

    const SERIAL: &str = "\
(d0) benchdrv: ours blk_seq_write bytes=67108864 ms=4000
benchdrv: linux blk_seq_write bytes=67108864 ms=2000
benchdrv: ours blk_seq_write bytes=67108864 ms=6000
benchdrv: ours blk_rand_read reads=1500 us=5000000
benchdrv: ours net_tcp_tx bytes=33554432 ms=8000
benchdrv: linux net_tcp_rx bytes=0 ms=10
benchdrv: linux net_ping avg_ms=0.734
benchdrv: ours: randread failed
benchdrv: other blk_seq_read bytes=1 ms=1
benchdrv: ours bogus bytes=1 ms=1
";

    #[test]
    fn reads_each_line_in_its_rows_unit() {
        let m = parse(SERIAL);
        let get = |b: &str, r: &str| m.get(&(b.to_string(), r.to_string())).cloned();
        assert_eq!(get("ours", "blk_seq_write").map(|v| v.len()), Some(2));
        assert_eq!(
            median(get("ours", "blk_seq_write").unwrap_or_default()),
            Some((16.777216 + 11.184810666666666) / 2.0)
        );
        assert_eq!(get("linux", "blk_seq_write"), Some(vec![33.554432]));
        assert_eq!(get("ours", "blk_rand_read"), Some(vec![300.0]));
        assert_eq!(get("ours", "net_tcp_tx"), Some(vec![33.554432]));
        assert_eq!(get("linux", "net_ping"), Some(vec![0.734]));
        // Nothing received is no measurement; unknown backends and rows are skipped.
        assert_eq!(get("linux", "net_tcp_rx"), None);
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn the_table_shows_ratios_and_missing_cells() {
        let (md, json) = table(&parse(SERIAL), &Measured::new());
        let write = md.lines().find(|l| l.starts_with("| blkif sequential write")).unwrap_or_default();
        assert_eq!(
            write,
            "| blkif sequential write, 1 MiB O_DIRECT | MB/s | 14.0 | 33.6 | 0.42 | missing | missing | - | - | - |"
        );
        assert!(
            json.contains("\"row\": \"net_ping\", \"unit\": \"ms\", \"xenish\": { \"ours\": null, \"linux\": 0.734 }")
        );
        assert!(script().contains("rounds=3") && DOMU_INIT.contains("xenish-randread /dev/$d $randsecs"));
    }
}
