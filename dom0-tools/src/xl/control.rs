//! The commands that act on a domain: `destroy`, `shutdown`, `reboot`,
//! `pause`, `unpause`, `rename`, `mem-set`, `mem-max`, `sched-credit`,
//! and `dmesg` (the hypervisor's log).
//!
//! Semantics: Xen 4.17 `tools/xl/xl_vmcontrol.c`, `xl_sched.c`,
//! `xl_mem.c`, `xl_info.c main_dmesg`; `libxl_domain.c`
//! (`libxl__destroy_domid`: pause, remove the XenStore entries, destroy;
//! `libxl_set_memory_target`).

use std::time::{Duration, Instant};

use super::{getopt, Ctx, Status, FAIL, OK, USAGE};
use crate::builder::xs_tree;
use crate::xs_client::TxId;

/// libxl's `LIBXL_MAXMEM_CONSTANT`.
const MAXMEM_SLACK_KB: u64 = 1024;
/// `XEN_SCHEDULER_CREDIT`.
const SCHED_CREDIT: u32 = 5;

/// Opens the handles and finds the one domain operand.
fn one_domain(cmd: &str, operands: &[String]) -> Result<(Ctx, u16), Status> {
    let [dom] = operands else {
        super::help(cmd);
        return Err(USAGE);
    };
    let mut ctx = Ctx::open()?;
    let id = ctx.find_domain(dom)?;
    Ok((ctx, id))
}

/// Destroys `domid` as libxl does: pause, remove its XenStore entries,
/// `destroydomain`.
pub fn destroy_domain(ctx: &mut Ctx, domid: u16) -> Result<(), String> {
    let _ = ctx.xc.pause(domid);
    super::vbd::remove_all(&mut ctx.xs, domid);
    super::vif::remove_all(&mut ctx.xs, domid);
    xs_tree::remove(&mut ctx.xs, domid).map_err(|e| format!("cannot remove the XenStore entries: {e}"))?;
    ctx.xc.destroy(domid).map_err(|e| e.to_string())
}

/// `xl destroy [-f] DOMAIN`.
pub fn destroy(args: &[String]) -> Status {
    let (opts, operands) = match getopt("destroy", args, "f", "", &[]) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let (mut ctx, id) = match one_domain("destroy", &operands) {
        Ok(x) => x,
        Err(s) => return s,
    };
    if id == 0 && opts.is_empty() {
        eprintln!("Destroying domain 0 is not permitted.");
        return FAIL;
    }
    match destroy_domain(&mut ctx, id) {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("destroy failed: {e}");
            FAIL
        }
    }
}

/// Waits until `domid` is gone or shut down; `Some(reason)` for a shutdown.
fn wait_for_death(ctx: &Ctx, domid: u16, timeout: Duration) -> Result<Option<u32>, ()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        match ctx.xc.domain_info(domid) {
            Ok(None) => return Ok(None),
            Ok(Some(i)) if i.dying() => return Ok(None),
            Ok(Some(i)) if i.shutdown() => return Ok(Some(i.shutdown_reason())),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Err(())
}

/// `shutdown`/`reboot`: writes `control/shutdown`, optionally waits.
fn pv_control(cmd: &str, what: &str, args: &[String]) -> Status {
    let (opts, operands) = match getopt(cmd, args, "awF", "", &[("all", 'a'), ("wait", 'w')]) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let wait = opts.iter().any(|o| o.0 == 'w');
    let all = opts.iter().any(|o| o.0 == 'a');
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    let ids: Vec<u16> = if all {
        ctx.xc.list_domains().unwrap_or_default().iter().map(|i| i.domid).filter(|&d| d != 0).collect()
    } else {
        let [dom] = operands.as_slice() else {
            super::help(cmd);
            return USAGE;
        };
        match ctx.find_domain(dom) {
            Ok(id) => vec![id],
            Err(s) => return s,
        }
    };
    for &id in &ids {
        eprintln!("{} domain {id}", if what == "poweroff" { "Shutting down" } else { "Rebooting" });
        if let Err(e) = ctx.xs.write(TxId::NONE, &format!("/local/domain/{id}/control/shutdown"), what.as_bytes()) {
            eprintln!("{cmd} failed: {e}");
            return FAIL;
        }
    }
    if wait {
        eprintln!("Waiting for {} domains", ids.len());
        for id in ids {
            match wait_for_death(&ctx, id, Duration::from_secs(300)) {
                Ok(None) => eprintln!("Domain {id} has been destroyed."),
                Ok(Some(reason)) => eprintln!("Domain {id} has been shut down, reason code {reason}"),
                Err(()) => {
                    eprintln!("Domain {id} did not shut down");
                    return FAIL;
                }
            }
        }
    }
    OK
}

/// `xl shutdown [-w] [-a] DOMAIN`.
pub fn shutdown(args: &[String]) -> Status {
    pv_control("shutdown", "poweroff", args)
}

/// `xl reboot [-w] [-a] DOMAIN`.
pub fn reboot(args: &[String]) -> Status {
    pv_control("reboot", "reboot", args)
}

/// `xl pause DOMAIN`.
pub fn pause(args: &[String]) -> Status {
    let (ctx, id) = match one_domain("pause", args) {
        Ok(x) => x,
        Err(s) => return s,
    };
    match ctx.xc.pause(id) {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("libxl_domain_pause failed: {e}");
            FAIL
        }
    }
}

/// `xl unpause DOMAIN`.
pub fn unpause(args: &[String]) -> Status {
    let (ctx, id) = match one_domain("unpause", args) {
        Ok(x) => x,
        Err(s) => return s,
    };
    match ctx.xc.unpause(id) {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("libxl_domain_unpause failed: {e}");
            FAIL
        }
    }
}

/// `xl rename DOMAIN NEWNAME`.
pub fn rename(args: &[String]) -> Status {
    let [dom, new] = args else {
        super::help("rename");
        return USAGE;
    };
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    let id = match ctx.find_domain(dom) {
        Ok(id) => id,
        Err(s) => return s,
    };
    match rename_domain(&mut ctx, id, new) {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("{e}");
            FAIL
        }
    }
}

/// Renames `domid` to `new` (`/local/domain/N/name` and `/vm/…/name`).
pub fn rename_domain(ctx: &mut Ctx, domid: u16, new: &str) -> Result<(), String> {
    match xs_tree::name_in_use(&mut ctx.xs, new) {
        Ok(Some(other)) if other != domid => return Err(format!("Domain with name \"{new}\" already exists.")),
        Err(e) => return Err(format!("xenstore: {e}")),
        _ => {}
    }
    let dom = format!("/local/domain/{domid}");
    let vm = ctx.xs.read(TxId::NONE, &format!("{dom}/vm")).ok().map(|v| String::from_utf8_lossy(&v).into_owned());
    xs_tree::transaction(&mut ctx.xs, |xs, tx| {
        xs.write(tx, &format!("{dom}/name"), new.as_bytes())?;
        if let Some(vm) = &vm {
            xs.write(tx, &format!("{vm}/name"), new.as_bytes())?;
        }
        Ok(())
    })
    .map_err(|e| format!("libxl_domain_rename failed: {e}"))
}

/// xl's `parse_mem_size_kb`: a number with an optional b/k/m/g/t suffix
/// (MiB without one).
pub fn parse_mem_kb(s: &str) -> Option<u64> {
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => s.split_at(at),
        None => (s, "m"),
    };
    let n: u64 = num.parse().ok()?;
    match unit.to_ascii_lowercase().as_str() {
        "b" => Some(n / 1024),
        "k" => Some(n),
        "m" => n.checked_mul(1024),
        "g" => n.checked_mul(1 << 20),
        "t" => n.checked_mul(1 << 30),
        _ => None,
    }
}

fn read_u64(ctx: &mut Ctx, path: &str) -> Option<u64> {
    String::from_utf8(ctx.xs.read(TxId::NONE, path).ok()?).ok()?.parse().ok()
}

/// `mem-set`/`mem-max` shared parsing.
fn mem_args(cmd: &str, args: &[String]) -> Result<(Ctx, u16, u64), Status> {
    let [dom, mem] = args else {
        super::help(cmd);
        return Err(USAGE);
    };
    let Some(kb) = parse_mem_kb(mem) else {
        eprintln!("invalid memory size: {mem}");
        return Err(FAIL);
    };
    let mut ctx = Ctx::open()?;
    let id = ctx.find_domain(dom)?;
    Ok((ctx, id, kb))
}

/// `xl mem-set DOMAIN SIZE`: the balloon target, as
/// `libxl_set_memory_target(enforce = 1)`.
pub fn mem_set(args: &[String]) -> Status {
    let (mut ctx, id, kb) = match mem_args("mem-set", args) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let dom = format!("/local/domain/{id}");
    let static_max = read_u64(&mut ctx, &format!("{dom}/memory/static-max"));
    if static_max.is_some_and(|m| kb > m) {
        eprintln!("memory_dynamic_max must be less than or equal to memory_static_max");
        return FAIL;
    }
    if let Err(e) = ctx.xc.max_mem(id, kb + MAXMEM_SLACK_KB) {
        eprintln!("cannot set the memory limit: {e}");
        return FAIL;
    }
    let vm = ctx.xs.read(TxId::NONE, &format!("{dom}/vm")).ok().map(|v| String::from_utf8_lossy(&v).into_owned());
    let r = xs_tree::transaction(&mut ctx.xs, |xs, tx| {
        xs.write(tx, &format!("{dom}/memory/target"), kb.to_string().as_bytes())?;
        if let Some(vm) = &vm {
            xs.write(tx, &format!("{vm}/memory"), (kb / 1024).to_string().as_bytes())?;
        }
        Ok(())
    });
    match r {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("cannot set the memory target: {e}");
            FAIL
        }
    }
}

/// `xl mem-max DOMAIN SIZE`.
pub fn mem_max(args: &[String]) -> Status {
    let (mut ctx, id, kb) = match mem_args("mem-max", args) {
        Ok(x) => x,
        Err(s) => return s,
    };
    if let Err(e) = ctx.xc.max_mem(id, kb + MAXMEM_SLACK_KB) {
        eprintln!("Unable to set domain {id} maximum memory: {e}");
        return FAIL;
    }
    let path = format!("/local/domain/{id}/memory/static-max");
    match ctx.xs.write(TxId::NONE, &path, kb.to_string().as_bytes()) {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("cannot write {path}: {e}");
            FAIL
        }
    }
}

/// `xl sched-credit [-d DOMAIN [-w WEIGHT] [-c CAP]]`.
pub fn sched_credit(args: &[String]) -> Status {
    let long = [("domain", 'd'), ("weight", 'w'), ("cap", 'c'), ("cpupool", 'p')];
    let (opts, _) = match getopt("sched-credit", args, "dwcp", "dwcp", &long) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let get = |c: char| opts.iter().rev().find(|o| o.0 == c).and_then(|o| o.1.clone());
    let mut ctx = match Ctx::open() {
        Ok(c) => c,
        Err(s) => return s,
    };
    let num = |v: Option<String>, max: u64| -> Result<Option<u16>, Status> {
        match v {
            None => Ok(None),
            Some(s) => match s.parse::<u64>() {
                Ok(n) if n <= max => Ok(Some(n as u16)),
                _ => {
                    eprintln!("Invalid value: {s}");
                    Err(FAIL)
                }
            },
        }
    };
    let (weight, cap) = match (num(get('w'), 65535), num(get('c'), 65535)) {
        (Ok(w), Ok(c)) => (w, c),
        (Err(s), _) | (_, Err(s)) => return s,
    };
    let ids: Vec<u16> = match get('d') {
        Some(d) => match ctx.find_domain(&d) {
            Ok(id) => vec![id],
            Err(s) => return s,
        },
        None if weight.is_some() || cap.is_some() => {
            eprintln!("Must specify a domain.");
            return FAIL;
        }
        None => ctx.xc.list_domains().unwrap_or_default().iter().map(|i| i.domid).collect(),
    };
    if weight.is_some() || cap.is_some() {
        let Some(&id) = ids.first() else { return FAIL };
        let cur = match ctx.xc.sched_credit_get(id, SCHED_CREDIT) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("libxl_domain_sched_params_get failed: {e}");
                return FAIL;
            }
        };
        return match ctx.xc.sched_credit_set(id, SCHED_CREDIT, weight.unwrap_or(cur.0), cap.unwrap_or(cur.1)) {
            Ok(()) => OK,
            Err(e) => {
                eprintln!("libxl_domain_sched_params_set failed: {e}");
                FAIL
            }
        };
    }
    println!("{:<33} {:>4} {:>6} {:>4}", "Name", "ID", "Weight", "Cap");
    for id in ids {
        match ctx.xc.sched_credit_get(id, SCHED_CREDIT) {
            Ok((w, c)) => {
                let name = ctx.name_of(id).unwrap_or_default();
                println!("{name:<33} {id:>4} {w:>6} {c:>4}");
            }
            Err(e) => {
                eprintln!("libxl_domain_sched_params_get failed: {e}");
                return FAIL;
            }
        }
    }
    OK
}

/// `xl dmesg [-c]`.
pub fn dmesg(args: &[String]) -> Status {
    let (opts, _) = match getopt("dmesg", args, "c", "", &[("clear", 'c')]) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let Ok(ctx) = Ctx::open() else { return FAIL };
    match ctx.xc.read_console(!opts.is_empty()) {
        Ok(text) => {
            print!("{}", String::from_utf8_lossy(&text));
            OK
        }
        Err(e) => {
            eprintln!("xl dmesg: cannot read the hypervisor's console: {e}");
            FAIL
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_take_xl_s_suffixes() {
        assert_eq!(parse_mem_kb("256"), Some(256 * 1024));
        assert_eq!(parse_mem_kb("256m"), Some(256 * 1024));
        assert_eq!(parse_mem_kb("1G"), Some(1 << 20));
        assert_eq!(parse_mem_kb("2048k"), Some(2048));
        assert_eq!(parse_mem_kb("4096b"), Some(4));
        assert_eq!(parse_mem_kb("12q"), None);
        assert_eq!(parse_mem_kb("m"), None);
    }
}
