//! xenish's own command line: space-separated `key` / `key=value` options,
//! Xen's style. This module owns `dom0_mem=` (Xen's syntax and sizing rules)
//! and the list of options nobody claimed; `domain=` declarations are parsed
//! by [`crate::domain_config`].

use alloc::vec::Vec;
use core::fmt;

use crate::xpti::XptiOption;

/// Options xenish knows; anything else is reported as unknown.
const KNOWN: &[&str] =
    &["dom0_mem", "dom0_max_vcpus", "domain", "console", "com1", "loglvl", "guest_loglvl", "console_io"];

/// Bytes per page.
const PAGE: u64 = 4096;

/// The most dom0 keeps back by default: 128 MiB, in pages.
const DEFAULT_RESERVE_MAX: u64 = (128 << 20) / PAGE;

/// Xen's default dom0 size out of `avail` pages: all of them less a
/// reserve of 1/16, at most 128 MiB ("for things like DMA buffers").
pub fn default_dom0_pages(avail: u64) -> u64 {
    avail - (avail / 16).min(DEFAULT_RESERVE_MAX)
}

/// dom0's size as worked out from the command line and the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dom0Size {
    /// Pages dom0 gets.
    pub nr_pages: u64,
    /// Whether Xen's clip for kernels that map their p2m list in the
    /// initial mapping made it smaller ("Dom0 memory clipped").
    pub clipped: bool,
}

/// A size in `dom0_mem=`: an amount, or "all but" an amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemSize {
    /// This many bytes.
    Bytes(u64),
    /// All available memory minus this many bytes (`-<size>`).
    AllBut(u64),
}

/// `dom0_mem=[min:<sz>,][max:<sz>,][<sz>]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0Mem {
    /// Lower bound.
    pub min: Option<MemSize>,
    /// Upper bound.
    pub max: Option<MemSize>,
    /// The amount itself.
    pub amount: Option<MemSize>,
}

/// Why an option could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    /// A size that does not parse (`<digits>[KMGT]`).
    BadSize(&'static str),
    /// The sizes leave dom0 no memory.
    NoMemory,
    /// A number that does not parse (the option named).
    BadNumber(&'static str),
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSize(what) => write!(f, "bad size in {what} (expected e.g. 512M, 1G, -256M)"),
            Self::NoMemory => f.write_str("the sizes leave dom0 no memory"),
            Self::BadNumber(what) => write!(f, "bad number in {what}"),
        }
    }
}

/// Parses a size with Xen's `parse_size_and_unit`: digits with an optional
/// suffix B, K, M, G or T; no suffix means KiB.
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        "" | "K" | "k" => 10,
        "B" | "b" => 0,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

fn parse_mem_size(s: &str) -> Option<MemSize> {
    match s.strip_prefix('-') {
        Some(rest) => parse_size(rest).map(MemSize::AllBut),
        None => parse_size(s).map(MemSize::Bytes),
    }
}

impl Dom0Mem {
    /// Parses the value of `dom0_mem=`.
    pub fn parse(value: &str) -> Result<Self, CmdlineError> {
        let mut out = Dom0Mem::default();
        for part in value.split(',') {
            let (slot, text, what) = if let Some(v) = part.strip_prefix("min:") {
                (&mut out.min, v, "dom0_mem=min:")
            } else if let Some(v) = part.strip_prefix("max:") {
                (&mut out.max, v, "dom0_mem=max:")
            } else {
                (&mut out.amount, part, "dom0_mem=")
            };
            *slot = Some(parse_mem_size(text).ok_or(CmdlineError::BadSize(what))?);
        }
        Ok(out)
    }

    /// dom0's page count given `avail` free pages, after Xen's
    /// `dom0_compute_nr_pages`: the amount (default: all available memory
    /// less a reserve of 1/16, at most 128 MiB), clamped to [min, max] and to
    /// what is available.
    pub fn pages(&self, avail: u64) -> Result<u64, CmdlineError> {
        let resolve = |m: MemSize| match m {
            MemSize::Bytes(b) => b / PAGE,
            MemSize::AllBut(b) => avail.saturating_sub(b / PAGE),
        };
        let mut pages = self.amount.map_or(default_dom0_pages(avail), resolve);
        if let Some(min) = self.min {
            pages = pages.max(resolve(min));
        }
        if let Some(max) = self.max {
            pages = pages.min(resolve(max));
        }
        let pages = pages.min(avail);
        if pages == 0 {
            return Err(CmdlineError::NoMemory);
        }
        Ok(pages)
    }
}

impl Dom0Mem {
    /// dom0's size out of `avail` pages for `kernel` (with an initrd of
    /// `initrd_len` bytes), after Xen 4.17's `dom0_compute_nr_pages`:
    /// [`Self::pages`], then, unless an amount was given, a kernel that
    /// maps its p2m list inside its initial mapping (no usable `INIT_P2M`)
    /// gets no more than leaves about half of the virtual space between
    /// `VIRT_BASE` and the end of the address space for the page tables it
    /// builds next ("Legacy Linux kernels ... require that there is enough
    /// virtual space beyond the initial allocation"). For a kernel at
    /// `0xffffffff80000000` that is about 512 GiB.
    pub fn compute_nr_pages(
        &self,
        avail: u64,
        kernel: &crate::builder::KernelExtent,
        initrd_len: u64,
    ) -> Result<Dom0Size, CmdlineError> {
        let nr_pages = self.pages(avail)?;
        let positive = |m: Option<MemSize>| matches!(m, Some(MemSize::Bytes(b)) if b / PAGE > 0);
        let min_pages = match self.min {
            Some(MemSize::Bytes(b)) => b / PAGE,
            Some(MemSize::AllBut(b)) => avail.saturating_sub(b / PAGE),
            None => 0,
        };
        let legacy =
            !kernel.init_p2m && !positive(self.amount) && (!positive(self.min) || nr_pages > min_pages.min(avail));
        if !legacy {
            return Ok(Dom0Size { nr_pages, clipped: false });
        }
        // Xen's arithmetic, in 64-bit unsigned longs that may wrap.
        let round = |v: u64| v.wrapping_add(PAGE - 1) & !(PAGE - 1);
        let vstart = kernel.virt_base;
        let mut vend = round(kernel.virt_kend);
        if !kernel.unmapped_initrd {
            vend = vend.wrapping_add(round(initrd_len));
        }
        let mut end = vend.wrapping_add(nr_pages.wrapping_mul(8));
        if end > vstart {
            end = end.wrapping_add(end - vstart);
        }
        if end > vstart {
            return Ok(Dom0Size { nr_pages, clipped: false });
        }
        let mut clipped = 0u64.wrapping_sub(vend) / 16;
        if positive(self.min) && clipped < min_pages {
            clipped = min_pages;
        }
        Ok(Dom0Size { nr_pages: clipped, clipped: true })
    }
}

/// The parsed command line.
#[derive(Debug, Default)]
pub struct CommandLine<'a> {
    dom0_mem: Option<&'a str>,
    dom0_max_vcpus: Option<&'a str>,
    console_io: Option<&'a str>,
    nosmp: bool,
    maxcpus: Option<&'a str>,
    smp_guests: Option<bool>,
    xpti: Vec<&'a str>,
    unknown: Vec<&'a str>,
}

impl<'a> CommandLine<'a> {
    /// Splits `line` into options (the last `dom0_mem=` wins, as in Xen).
    pub fn parse(line: &'a str) -> Self {
        let mut out = CommandLine::default();
        for opt in line.split_ascii_whitespace() {
            let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
            match key {
                "dom0_mem" => out.dom0_mem = Some(value),
                "dom0_max_vcpus" => out.dom0_max_vcpus = Some(value),
                "console_io" => out.console_io = Some(value),
                "nosmp" if value.is_empty() => out.nosmp = true,
                "maxcpus" => out.maxcpus = Some(value),
                "xpti" => out.xpti.push(value),
                // A boolean as Xen parses one (parse_bool), `no-` too.
                "smp_guests" => match value {
                    "" | "1" | "on" | "yes" | "true" | "enable" => out.smp_guests = Some(true),
                    "0" | "off" | "no" | "false" | "disable" => out.smp_guests = Some(false),
                    _ => out.unknown.push(opt),
                },
                "no-smp_guests" if value.is_empty() => out.smp_guests = Some(false),
                k if KNOWN.contains(&k) => {}
                _ => out.unknown.push(opt),
            }
        }
        out
    }

    /// Options xenish does not know.
    pub fn unknown(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.unknown.iter().copied()
    }

    /// `console_io=all`: every domain may write to the hypervisor console
    /// with `console_io`, as under a Xen built with `CONFIG_VERBOSE_DEBUG`
    /// (the default, as a release build of Xen 4.17: the control domain
    /// only).
    pub fn console_io_for_all(&self) -> bool {
        self.console_io == Some("all")
    }

    /// dom0's page count out of `avail` free pages.
    #[cfg(test)]
    pub fn dom0_pages(&self, avail: u64) -> Result<u64, CmdlineError> {
        self.dom0_mem()?.pages(avail)
    }

    /// How many CPUs to bring up, the boot CPU included, as Xen's
    /// `nosmp` and `maxcpus=N` say: `nosmp` one (whatever `maxcpus`
    /// says); `maxcpus=N` at most N, where 0 means no limit (Xen's
    /// `set_nr_cpu_ids(0)` keeps every possible CPU); neither, no limit
    /// (`None`). A `maxcpus=` that is no number is an error, which the
    /// caller reports and ignores, as Xen ignores a bad integer parameter.
    pub fn cpu_limit(&self) -> Result<Option<usize>, CmdlineError> {
        if self.nosmp {
            return Ok(Some(1));
        }
        match self.maxcpus {
            None => Ok(None),
            Some(v) => match v.parse::<usize>() {
                Ok(0) => Ok(None),
                Ok(n) => Ok(Some(n)),
                Err(_) => Err(CmdlineError::BadNumber("maxcpus=")),
            },
        }
    }

    /// Whether vCPUs run on every CPU that is up (sharing the system lock):
    /// on by default (`smp_guests`, `=1`, `on`, `yes`, `true`, `enable`; a
    /// boolean as Xen parses one). `smp_guests=0` (`off`, `no`, `false`,
    /// `disable`, `no-smp_guests`) keeps vCPUs on the boot CPU and the
    /// others idle; `nosmp` or `maxcpus=1` bring up one CPU only.
    pub fn smp_guests(&self) -> bool {
        self.smp_guests.unwrap_or(true)
    }

    /// How many of the `online` CPUs run guests: all of them, or the boot
    /// CPU alone with `smp_guests=0`. Xen's default dom0 vCPU count is
    /// this number (one per CPU of its pool).
    pub fn guest_cpus(&self, online: usize) -> usize {
        if self.smp_guests() {
            online.max(1)
        } else {
            1
        }
    }

    /// The `xpti=` options in order, applied as Xen 4.17 applies them
    /// ([`XptiOption::apply`]), and the values with an element
    /// Xen would refuse (reported; their other elements still apply).
    pub fn xpti(&self) -> (XptiOption, Vec<&'a str>) {
        let mut opt = XptiOption::default();
        let bad = self.xpti.iter().copied().filter(|v| !opt.apply(v)).collect();
        (opt, bad)
    }

    /// The value of `dom0_max_vcpus=`, if given (the last one wins;
    /// [`crate::setup::dom0_max_vcpus`] reads it).
    pub fn dom0_max_vcpus(&self) -> Option<&'a str> {
        self.dom0_max_vcpus
    }

    /// The `dom0_mem=` option (the default: none of its parts given).
    pub fn dom0_mem(&self) -> Result<Dom0Mem, CmdlineError> {
        self.dom0_mem.map_or(Ok(Dom0Mem::default()), Dom0Mem::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 256; // pages per MiB

    #[test]
    fn xpti_options_apply_in_order() {
        use crate::xpti::{CpuFacts, Xpti};
        let intel = CpuFacts::default();
        let line = CommandLine::parse("xpti=off console_io=all xpti=dom0 xpti=domu=bogus");
        let (opt, bad) = line.xpti();
        assert_eq!(bad, ["domu=bogus"]);
        assert_eq!(Xpti::resolve(opt, intel), Xpti { dom0: true, domu: false });
        assert_eq!(line.unknown().count(), 0);
        let (opt, bad) = CommandLine::parse("xpti").xpti();
        assert!(bad.is_empty());
        assert_eq!(
            Xpti::resolve(opt, CpuFacts { amd_or_hygon: true, rdcl_no: false }),
            Xpti { dom0: true, domu: true }
        );
        assert_eq!(CommandLine::parse("").xpti().0, XptiOption::default());
    }

    #[test]
    fn sizes_follow_xen_units() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("2048"), Some(2048 << 10)); // no suffix: KiB
        assert_eq!(parse_size("4096B"), Some(4096));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    #[test]
    fn dom0_mem_forms() {
        let avail = 1024 * MIB;
        let pages = |s: &str| CommandLine::parse(s).dom0_pages(avail);
        assert_eq!(pages("dom0_mem=64M"), Ok(64 * MIB));
        assert_eq!(pages("dom0_mem=-256M"), Ok(768 * MIB));
        assert_eq!(pages("dom0_mem=min:512M,128M"), Ok(512 * MIB));
        assert_eq!(pages("dom0_mem=max:256M"), Ok(256 * MIB));
        assert_eq!(pages("dom0_mem=min:128M,max:256M,-16M"), Ok(256 * MIB));
        assert_eq!(pages("dom0_mem=4G"), Ok(avail)); // capped at what exists
        assert_eq!(pages(""), Ok(avail - 64 * MIB)); // 1/16 reserve
        assert_eq!(CommandLine::parse("").dom0_pages(8192 * MIB), Ok(8192 * MIB - 128 * MIB));
        assert_eq!(pages("dom0_mem=64M dom0_mem=32M"), Ok(32 * MIB));
    }

    #[test]
    fn legacy_kernels_are_clipped_to_their_initial_mapping() {
        use crate::builder::KernelExtent;
        // A guest-rt or old Linux kernel: at -2 GiB, its p2m list mapped.
        let high = KernelExtent {
            virt_base: 0xffff_ffff_8000_0000,
            virt_kend: 0xffff_ffff_8100_0000,
            init_p2m: false,
            unmapped_initrd: false,
        };
        let size = |line: &str, avail: u64, k: &KernelExtent| {
            CommandLine::parse(line).dom0_mem().and_then(|m| m.compute_nr_pages(avail, k, 0))
        };
        let fits = Dom0Size { nr_pages: default_dom0_pages(1 << 22), clipped: false };
        assert_eq!(size("", 1 << 22, &high), Ok(fits), "16 GiB: 32 MiB of p2m list fits");
        // 2 GiB from VIRT_BASE, less the 16 MiB kernel: half of it for the
        // p2m list, 8 bytes a page.
        let limit = ((2u64 << 30) - (16 << 20)) / 16;
        let tib = 1024 * 1024 * MIB;
        assert_eq!(size("", tib, &high), Ok(Dom0Size { nr_pages: limit, clipped: true }), "1 TiB");
        assert_eq!(size("dom0_mem=-1G", tib, &high).map(|s| s.nr_pages), Ok(limit), "all-but is no amount");
        assert_eq!(
            size("dom0_mem=min:600G", tib, &high),
            Ok(Dom0Size { nr_pages: 600 * 1024 * MIB, clipped: true }),
            "but no less than min"
        );
        let given = Dom0Size { nr_pages: 768 * 1024 * MIB, clipped: false };
        assert_eq!(size("dom0_mem=768G", tib, &high), Ok(given), "an amount given is not clipped");
        let mut mapped_initrd = high;
        mapped_initrd.virt_kend = 0xffff_ffff_8000_0000 + (1 << 30);
        assert!(size("", 64 * 1024 * MIB, &mapped_initrd).is_ok_and(|s| s.clipped), "less room above a big kernel");
        let modern = KernelExtent { init_p2m: true, ..high };
        assert_eq!(size("", tib, &modern).map(|s| s.clipped), Ok(false), "INIT_P2M: nothing to clip");
        let low = KernelExtent { virt_base: 0, virt_kend: 0x40_0000, ..high };
        assert_eq!(size("", tib, &low).map(|s| s.clipped), Ok(false), "a kernel at 0 has room");
    }

    #[test]
    fn bad_values_and_unknown_options() {
        let line = CommandLine::parse("dom0_mem=lots console=com1 nosmp=1 frobnicate=3");
        assert_eq!(line.dom0_pages(100), Err(CmdlineError::BadSize("dom0_mem=")));
        assert_eq!(line.unknown().collect::<Vec<_>>(), ["nosmp=1", "frobnicate=3"]);
        assert_eq!(CommandLine::parse("dom0_mem=min:x").dom0_pages(100), Err(CmdlineError::BadSize("dom0_mem=min:")));
        assert_eq!(CommandLine::parse("dom0_mem=-2G").dom0_pages(100), Err(CmdlineError::NoMemory));
        assert_eq!(CommandLine::parse("dom0_mem=0").dom0_pages(100), Err(CmdlineError::NoMemory));
    }

    #[test]
    fn console_io_all_opens_the_console_to_every_domain() {
        assert!(!CommandLine::parse("dom0_mem=64M").console_io_for_all(), "Xen's release default");
        assert!(CommandLine::parse("console_io=all dom0_mem=64M").console_io_for_all());
        assert!(!CommandLine::parse("console_io=yes").console_io_for_all());
        assert_eq!(CommandLine::parse("console_io=all").unknown().count(), 0);
    }

    #[test]
    fn nosmp_and_maxcpus_limit_the_cpus_brought_up() {
        let limit = |s: &str| CommandLine::parse(s).cpu_limit();
        assert_eq!(limit(""), Ok(None), "every CPU by default");
        assert_eq!(limit("nosmp"), Ok(Some(1)));
        assert_eq!(limit("maxcpus=2"), Ok(Some(2)));
        assert_eq!(limit("maxcpus=1"), Ok(Some(1)));
        assert_eq!(limit("maxcpus=0"), Ok(None), "0: no limit, as in Xen");
        assert_eq!(limit("maxcpus=4 nosmp"), Ok(Some(1)), "nosmp wins");
        assert_eq!(limit("nosmp maxcpus=4"), Ok(Some(1)));
        assert_eq!(limit("maxcpus=2 maxcpus=3"), Ok(Some(3)), "the last one counts");
        assert_eq!(limit("maxcpus=two"), Err(CmdlineError::BadNumber("maxcpus=")));
        assert_eq!(limit("maxcpus="), Err(CmdlineError::BadNumber("maxcpus=")));
        assert_eq!(limit("maxcpus=-1"), Err(CmdlineError::BadNumber("maxcpus=")));
        assert_eq!(CommandLine::parse("nosmp maxcpus=2").unknown().count(), 0);
    }

    #[test]
    fn smp_guests_is_a_boolean_as_xen_parses_them_and_on_by_default() {
        let smp = |l: &str| CommandLine::parse(l).smp_guests();
        assert!(smp(""), "the default");
        assert!(smp("nosmp maxcpus=1"), "the CPU count is cpu_limit's, not this option's");
        for on in ["smp_guests", "smp_guests=1", "smp_guests=on", "smp_guests=yes", "smp_guests=enable"] {
            assert!(smp(on), "{on}");
        }
        for off in ["smp_guests=0", "smp_guests=off", "smp_guests=false", "no-smp_guests", "smp_guests=1 smp_guests=no"]
        {
            assert!(!smp(off), "{off}");
        }
        let line = CommandLine::parse("smp_guests=maybe");
        assert!(line.smp_guests(), "not a boolean: ignored, the default stays");
        assert_eq!(line.unknown().collect::<Vec<_>>(), ["smp_guests=maybe"]);
    }
}
