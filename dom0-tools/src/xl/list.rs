//! The commands that describe domains: `list`, `domid`, `domname`,
//! `uptime`, `vcpu-list`, with xl's exact formats.
//!
//! Semantics: Xen 4.17 `tools/xl/xl_info.c` (`list_domains`,
//! `main_domid`, `main_domname`, `print_uptime`) and `xl_vcpu.c`.

use guest_abi::domctl::XenDomctl;
use xendev::DomainInfo;

use super::{getopt, Ctx, Status, FAIL, OK, USAGE};
use crate::xs_client::TxId;

/// `"-rscwS"[reason]`: the shutdown reason's letter.
const SHUTDOWN_LETTERS: &[u8] = b"-rscwS";
/// `XEN_DOMCTL_getvcpuinfo`.
const XEN_DOMCTL_GETVCPUINFO: u32 = 14;

/// xl list's header.
pub const LIST_HEADER: &str = "Name                                        ID   Mem VCPUs\tState\tTime(s)";

/// One `xl list` row for `info` named `name`.
pub fn list_row(name: &str, info: &DomainInfo) -> String {
    let reason = if info.shutdown() { info.shutdown_reason() as usize } else { 0 };
    let letter = SHUTDOWN_LETTERS.get(reason).copied().unwrap_or(b'?') as char;
    let flag = |on: bool, c: char| if on { c } else { '-' };
    format!(
        "{:<40} {:>5} {:>5} {:>5}     {}{}{}{}{}{}  {:>8.1}",
        name,
        info.domid,
        info.tot_pages * 4 / 1024,
        info.nr_online_vcpus,
        flag(info.running(), 'r'),
        flag(info.blocked(), 'b'),
        flag(info.paused(), 'p'),
        flag(info.shutdown(), 's'),
        letter,
        flag(info.dying(), 'd'),
        info.cpu_time as f64 / 1e9,
    )
}

/// A UUID's text form.
fn uuid_text(h: &[u8; 16]) -> String {
    crate::builder::domain::uuid_string(h)
}

/// `xl list [-l] [-v] [Domain]`.
pub fn list(args: &[String]) -> Status {
    let long = [("long", 'l'), ("verbose", 'v'), ("context", 'Z'), ("cpupool", 'c'), ("numa", 'n')];
    let (opts, operands) = match getopt("list", args, "lvZcn", "", &long) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let (details, verbose) = (opts.iter().any(|o| o.0 == 'l'), opts.iter().any(|o| o.0 == 'v'));
    let Ok(mut ctx) = Ctx::open() else { return FAIL };
    let infos = match operands.as_slice() {
        [] => match ctx.xc.list_domains() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("libxl_list_domain failed: {e}");
                return FAIL;
            }
        },
        [one] => {
            let info = ctx.lookup(one).and_then(|id| ctx.xc.domain_info(id).ok().flatten());
            match info {
                Some(i) => vec![i],
                None => {
                    eprintln!("Error: Domain '{one}' does not exist.");
                    return FAIL;
                }
            }
        }
        _ => {
            super::help("list");
            return USAGE;
        }
    };
    if details {
        print_details(&mut ctx, &infos);
        return OK;
    }
    let mut header = LIST_HEADER.to_string();
    if verbose {
        header.push_str("   UUID                            Reason-Code\tSecurity Label");
    }
    println!("{header}");
    for info in &infos {
        let name = ctx.name_of(info.domid).unwrap_or_else(|| "(null)".to_string());
        let mut row = list_row(&name, info);
        if verbose {
            row.push(' ');
            row.push_str(&uuid_text(&info.handle));
            if info.shutdown() {
                row.push_str(&format!(" {:>8x}", info.shutdown_reason()));
            } else {
                row.push_str(&format!(" {:>8}", "-"));
            }
            row.push_str(&format!(" {:>16}", "-"));
        }
        println!("{row}");
    }
    OK
}

/// `xl list -l`: each domain's configuration as JSON, the fields this xl
/// keeps (dom0 has none).
fn print_details(ctx: &mut Ctx, infos: &[DomainInfo]) {
    let mut out = Vec::new();
    for info in infos.iter().filter(|i| i.domid != 0) {
        let dom = format!("/local/domain/{}", info.domid);
        let mut read = |p: &str| {
            ctx.xs.read(TxId::NONE, p).ok().map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default()
        };
        let vm = read(&format!("{dom}/vm"));
        let entry = format!(
            "    {{\n        \"domid\": {},\n        \"config\": {{\n            \"c_info\": {{\n                \"type\": \"pv\",\n                \"name\": {:?},\n                \"uuid\": {:?}\n            }},\n            \"b_info\": {{\n                \"max_vcpus\": {},\n                \"max_memkb\": {},\n                \"target_memkb\": {},\n                \"type.pv\": {{\n                    \"kernel\": {:?},\n                    \"cmdline\": {:?},\n                    \"ramdisk\": {:?}\n                }}\n            }}\n        }}\n    }}",
            info.domid,
            read(&format!("{dom}/name")),
            uuid_text(&info.handle),
            info.max_vcpu_id.wrapping_add(1),
            read(&format!("{dom}/memory/static-max")),
            read(&format!("{dom}/memory/target")),
            read(&format!("{vm}/image/kernel")),
            read(&format!("{vm}/image/cmdline")),
            read(&format!("{vm}/image/ramdisk")),
        );
        out.push(entry);
    }
    println!("[\n{}\n]", out.join(",\n"));
}

/// `xl domid NAME`.
pub fn domid(args: &[String]) -> Status {
    let [name] = args else {
        super::help("domid");
        return USAGE;
    };
    let Ok(mut ctx) = Ctx::open() else { return FAIL };
    match crate::builder::xs_tree::name_in_use(&mut ctx.xs, name).ok().flatten() {
        Some(id) => {
            println!("{id}");
            OK
        }
        None => {
            eprintln!("Can't get domid of domain name '{name}', maybe this domain does not exist.");
            FAIL
        }
    }
}

/// `xl domname ID`.
pub fn domname(args: &[String]) -> Status {
    let [id] = args else {
        super::help("domname");
        return USAGE;
    };
    let digits: String = id.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Ok(domid) = digits.parse::<u32>() else {
        eprintln!("Invalid domain id.\n");
        return FAIL;
    };
    let Ok(mut ctx) = Ctx::open() else { return FAIL };
    match u16::try_from(domid).ok().and_then(|d| ctx.name_of(d)) {
        Some(name) => {
            println!("{name}");
            OK
        }
        None => {
            eprintln!("Can't get domain name of domain id '{domid}', maybe this domain does not exist.");
            FAIL
        }
    }
}

/// xl's `uptime_to_string`.
pub fn uptime_string(uptime: u64, short: bool) -> String {
    let (day, rest) = (uptime / 86400, uptime % 86400);
    let (hour, min, sec) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let days = match day {
        0 => String::new(),
        1 => "1 day, ".to_string(),
        d => format!("{d} days, "),
    };
    if short {
        format!("{days}{hour:2}:{min:02}")
    } else {
        format!("{days}{hour:2}:{min:02}:{sec:02}")
    }
}

/// `xl uptime [-s] [Domain...]`.
pub fn uptime(args: &[String]) -> Status {
    let (opts, operands) = match getopt("uptime", args, "s", "", &[]) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let short = !opts.is_empty();
    let Ok(mut ctx) = Ctx::open() else { return FAIL };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let ids: Vec<u16> = if operands.is_empty() {
        ctx.xc.list_domains().unwrap_or_default().iter().map(|i| i.domid).collect()
    } else {
        let mut ids = Vec::new();
        for o in &operands {
            match ctx.find_domain(o) {
                Ok(id) => ids.push(id),
                Err(s) => return s,
            }
        }
        ids
    };
    if !short {
        println!("{:<33} {:>4} Uptime", "Name", "ID");
    }
    for id in ids {
        let up = if id == 0 {
            std::fs::read_to_string("/proc/uptime")
                .ok()
                .and_then(|s| s.split(['.', ' ']).next().and_then(|n| n.parse::<u64>().ok()))
        } else {
            let vm = ctx.xs.read(TxId::NONE, &format!("/local/domain/{id}/vm")).ok();
            let start = vm.and_then(|vm| {
                let vm = String::from_utf8_lossy(&vm).into_owned();
                ctx.xs.read(TxId::NONE, &format!("{vm}/start_time")).ok()
            });
            start
                .and_then(|s| String::from_utf8_lossy(&s).split('.').next()?.parse::<u64>().ok())
                .map(|s| now.saturating_sub(s))
        };
        let Some(up) = up else { continue };
        let name = ctx.name_of(id).unwrap_or_default();
        if short {
            let t = now % 86400;
            println!(
                " {:02}:{:02}:{:02} up {}, {} ({})",
                t / 3600,
                t % 3600 / 60,
                t % 60,
                uptime_string(up, true),
                name,
                id
            );
        } else {
            println!("{:<33} {:>4} {}", name, id, uptime_string(up, false));
        }
    }
    OK
}

/// `xl vcpu-list [Domain...]`.
pub fn vcpu_list(args: &[String]) -> Status {
    let Ok(mut ctx) = Ctx::open() else { return FAIL };
    let infos: Vec<DomainInfo> = if args.is_empty() {
        ctx.xc.list_domains().unwrap_or_default()
    } else {
        let mut v = Vec::new();
        for a in args {
            match ctx.find_domain(a).map(|id| ctx.xc.domain_info(id)) {
                Ok(Ok(Some(i))) => v.push(i),
                Ok(_) => return FAIL,
                Err(s) => return s,
            }
        }
        v
    };
    // Xen's vcpulist asks physinfo first and prints nothing without it.
    let Some(nr_cpus) = super::vcpu::max_cpus(&ctx) else {
        eprintln!("libxl_physinfo failed.");
        return OK;
    };
    println!(
        "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} Affinity (Hard / Soft)",
        "Name", "ID", "VCPU", "CPU", "State", "Time(s)"
    );
    for info in infos {
        let name = ctx.name_of(info.domid).unwrap_or_default();
        for vcpu in 0..=info.max_vcpu_id.min(4095) {
            let mut d = XenDomctl::new(XEN_DOMCTL_GETVCPUINFO, info.domid);
            d.u[0] = u64::from(vcpu);
            if let Err(e) = ctx.xc.privcmd().domctl(&mut d) {
                eprintln!("libxl_list_vcpu failed: {e}");
                return FAIL;
            }
            // {u32 vcpu; u8 online, blocked, running; u64 cpu_time; u32 cpu}
            let (online, blocked, running) = ((d.u[0] >> 32) as u8, (d.u[0] >> 40) as u8, (d.u[0] >> 48) as u8);
            let (time, cpu) = (d.u[1], d.u[2] as u32);
            let cpu = if online != 0 { cpu.to_string() } else { "-".into() };
            let state = format!(
                "{}{}{}",
                if running != 0 { 'r' } else { '-' },
                if blocked != 0 { 'b' } else { '-' },
                if online == 0 { 'p' } else { '-' }
            );
            let affinity = match super::vcpu::affinity_column(&ctx, info.domid, vcpu, nr_cpus) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("libxl_list_vcpu failed: {e}");
                    return FAIL;
                }
            };
            println!(
                "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9.1}  {}",
                name,
                info.domid,
                vcpu,
                cpu,
                state,
                time as f64 / 1e9,
                affinity
            );
        }
    }
    OK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(flags: u32) -> DomainInfo {
        DomainInfo {
            domid: 3,
            flags,
            tot_pages: 65536,
            max_pages: 65792,
            shared_info_frame: 0,
            cpu_time: 1_234_000_000,
            nr_online_vcpus: 1,
            max_vcpu_id: 0,
            ssidref: 0,
            handle: [0; 16],
            cpupool: 0,
        }
    }

    #[test]
    fn rows_have_xl_s_columns() {
        assert_eq!(
            list_row("d1", &info(0xffff_0000 | 1 << 4)),
            "d1                                           3   256     1     -b----       1.2"
        );
        // Shut down with reason crash (3): 's' then 'c'.
        assert_eq!(&list_row("d1", &info(3 << 16 | 1 << 2))[63..69], "---sc-");
        // Paused and dying.
        assert_eq!(&list_row("d1", &info(0xffff_0000 | 1 << 3 | 1))[63..69], "--p--d");
        assert_eq!(LIST_HEADER.find("ID"), Some(44));
    }

    #[test]
    fn uptimes_print_as_xl_s() {
        assert_eq!(uptime_string(59, false), " 0:00:59");
        assert_eq!(uptime_string(86400 + 3661, false), "1 day,  1:01:01");
        assert_eq!(uptime_string(3 * 86400 + 600, true), "3 days,  0:10");
    }
}
