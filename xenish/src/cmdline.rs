//! xenish's own command line: space-separated `key` / `key=value` options,
//! Xen's style. This module owns `dom0_mem=` (Xen's syntax and sizing rules)
//! and the list of options nobody claimed; `domain=` declarations are parsed
//! by [`crate::domain_config`].

use alloc::vec::Vec;
use core::fmt;

/// Options xenish knows; anything else is reported as unknown.
const KNOWN: &[&str] = &["dom0_mem", "domain", "console", "com1", "loglvl", "guest_loglvl"];

/// Bytes per page.
const PAGE: u64 = 4096;

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
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSize(what) => write!(f, "bad size in {what} (expected e.g. 512M, 1G, -256M)"),
            Self::NoMemory => f.write_str("the sizes leave dom0 no memory"),
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
        let default = avail - (avail / 16).min((128 << 20) / PAGE);
        let mut pages = self.amount.map_or(default, resolve);
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

/// The parsed command line.
#[derive(Debug, Default)]
pub struct CommandLine<'a> {
    dom0_mem: Option<&'a str>,
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

    /// dom0's page count out of `avail` free pages.
    pub fn dom0_pages(&self, avail: u64) -> Result<u64, CmdlineError> {
        match self.dom0_mem {
            Some(v) => Dom0Mem::parse(v)?.pages(avail),
            None => Dom0Mem::default().pages(avail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 256; // pages per MiB

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
    fn bad_values_and_unknown_options() {
        let line = CommandLine::parse("dom0_mem=lots console=com1 nosmp frobnicate=3");
        assert_eq!(line.dom0_pages(100), Err(CmdlineError::BadSize("dom0_mem=")));
        assert_eq!(line.unknown().collect::<Vec<_>>(), ["nosmp", "frobnicate=3"]);
        assert_eq!(CommandLine::parse("dom0_mem=min:x").dom0_pages(100), Err(CmdlineError::BadSize("dom0_mem=min:")));
        assert_eq!(CommandLine::parse("dom0_mem=-2G").dom0_pages(100), Err(CmdlineError::NoMemory));
        assert_eq!(CommandLine::parse("dom0_mem=0").dom0_pages(100), Err(CmdlineError::NoMemory));
    }
}
