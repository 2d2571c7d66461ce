//! Boot-time domain declarations on xenish's command line:
//! `domain=NAME,module=N[,initrd=M][,mem=MIB][,vcpus=V][,weight=W][,cap=PCT][,privileged]`,
//! repeatable. Module numbers count the `module2` lines from 1; domain IDs
//! follow declaration order from 0. A bad declaration is reported and that
//! domain alone is left out.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::sched::DEFAULT_WEIGHT;

/// One declared boot-time domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// The domain's name.
    pub name: String,
    /// Module number (from 1) of the kernel.
    pub module: usize,
    /// Module number (from 1) of the initrd, if any.
    pub initrd: Option<usize>,
    /// Memory in MiB; `None` means the default.
    pub mem_mib: Option<u64>,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Scheduler weight.
    pub weight: u16,
    /// Scheduler cap in percent (0 = none).
    pub cap: u16,
    /// Whether the domain is privileged (a control domain).
    pub privileged: bool,
}

/// Why a declaration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The name is missing, too long or has characters other than
    /// letters, digits, `-`, `_` and `.`.
    BadName(String),
    /// `module=` is missing.
    NoModule,
    /// A key this syntax does not have.
    UnknownKey(String),
    /// A key given twice.
    Duplicate(&'static str),
    /// A value that is not a number in range.
    BadValue(&'static str, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName(n) => write!(f, "bad domain name '{n}' (1-32 of A-Z a-z 0-9 - _ .)"),
            Self::NoModule => f.write_str("module=N is required"),
            Self::UnknownKey(k) => write!(f, "unknown key '{k}'"),
            Self::Duplicate(k) => write!(f, "'{k}' given twice"),
            Self::BadValue(k, v) => write!(f, "bad value '{v}' for {k}"),
        }
    }
}

fn number<T: TryFrom<u64>>(key: &'static str, value: &str, min: u64, max: u64) -> Result<T, ConfigError> {
    let bad = || ConfigError::BadValue(key, String::from(value));
    let n: u64 = value.parse().map_err(|_| bad())?;
    if n < min || n > max {
        return Err(bad());
    }
    T::try_from(n).map_err(|_| bad())
}

fn set<T>(slot: &mut Option<T>, key: &'static str, value: T) -> Result<(), ConfigError> {
    if slot.is_some() {
        return Err(ConfigError::Duplicate(key));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses the value of one `domain=` option.
pub fn parse(value: &str) -> Result<DomainConfig, ConfigError> {
    let mut parts = value.split(',');
    let name = parts.next().unwrap_or("");
    let name_ok = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !name_ok {
        return Err(ConfigError::BadName(String::from(name)));
    }
    let (mut module, mut initrd, mut mem, mut vcpus, mut weight, mut cap, mut privileged) =
        (None, None, None, None, None, None, None);
    for part in parts {
        let (key, val) = part.split_once('=').unwrap_or((part, ""));
        match key {
            "module" => set(&mut module, "module", number("module", val, 1, 64)?)?,
            "initrd" => set(&mut initrd, "initrd", number("initrd", val, 1, 64)?)?,
            "mem" => set(&mut mem, "mem", number("mem", val, 1, 1 << 20)?)?,
            "vcpus" => set(&mut vcpus, "vcpus", number("vcpus", val, 1, 128)?)?,
            "weight" => set(&mut weight, "weight", number("weight", val, 1, 65535)?)?,
            "cap" => set(&mut cap, "cap", number("cap", val, 0, 100 * 128)?)?,
            "privileged" if val.is_empty() => set(&mut privileged, "privileged", true)?,
            _ => return Err(ConfigError::UnknownKey(String::from(key))),
        }
    }
    let vcpus = vcpus.unwrap_or(1);
    let cap: u16 = cap.unwrap_or(0);
    if u32::from(cap) > 100 * vcpus {
        return Err(ConfigError::BadValue("cap", alloc::format!("{cap}")));
    }
    Ok(DomainConfig {
        name: String::from(name),
        module: module.ok_or(ConfigError::NoModule)?,
        initrd,
        mem_mib: mem,
        vcpus,
        weight: weight.unwrap_or(DEFAULT_WEIGHT),
        cap,
        privileged: privileged.unwrap_or(false),
    })
}

/// Every `domain=` declaration on `cmdline`, in order, each parsed or refused.
pub fn declarations(cmdline: &str) -> Vec<Result<DomainConfig, (String, ConfigError)>> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|opt| opt.strip_prefix("domain="))
        .map(|v| parse(v).map_err(|e| (String::from(v), e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_minimal_declarations() {
        let d = parse("web,module=2,initrd=3,mem=128,vcpus=2,weight=512,cap=150,privileged").unwrap();
        assert_eq!(
            d,
            DomainConfig {
                name: "web".into(),
                module: 2,
                initrd: Some(3),
                mem_mib: Some(128),
                vcpus: 2,
                weight: 512,
                cap: 150,
                privileged: true
            }
        );
        let m = parse("a.b-c_1,module=1").unwrap();
        assert_eq!((m.vcpus, m.weight, m.cap, m.privileged, m.mem_mib), (1, 256, 0, false, None));
    }

    #[test]
    fn bad_declarations_say_why() {
        assert_eq!(parse(",module=1"), Err(ConfigError::BadName("".into())));
        assert_eq!(parse("a b,module=1").err().map(|e| matches!(e, ConfigError::BadName(_))), Some(true));
        assert_eq!(parse("x"), Err(ConfigError::NoModule));
        assert_eq!(parse("x,module=0"), Err(ConfigError::BadValue("module", "0".into())));
        assert_eq!(parse("x,module=1,module=2"), Err(ConfigError::Duplicate("module")));
        assert_eq!(parse("x,module=1,weight=0"), Err(ConfigError::BadValue("weight", "0".into())));
        assert_eq!(parse("x,module=1,cap=101"), Err(ConfigError::BadValue("cap", "101".into())));
        assert_eq!(parse("x,module=1,colour=red"), Err(ConfigError::UnknownKey("colour".into())));
        assert_eq!(parse("x,module=1,privileged=yes"), Err(ConfigError::UnknownKey("privileged".into())));
        assert_eq!(parse("x,module=1,mem=lots"), Err(ConfigError::BadValue("mem", "lots".into())));
    }

    #[test]
    fn declarations_keep_order_and_errors() {
        let all = declarations("console=com1 domain=a,module=1 domain=b,module=x domain=c,module=3,privileged");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].as_ref().unwrap().name, "a");
        assert!(all[1].is_err());
        assert!(all[2].as_ref().unwrap().privileged);
        assert!(declarations("dom0_mem=64M").is_empty());
    }
}
