//! A PV domain's configuration from xl.cfg settings: the keys a real PV
//! config uses, with xl's defaults and checks.
//!
//! Semantics: Xen 4.17 `docs/man/xl.cfg.5.pod.in`, `tools/xl/xl_parse.c
//! parse_config_data`, `libxl_create.c libxl__domain_build_info_setdefault`:
//! `memory`/`maxmem` in MiB (32 MiB when neither is set; `maxmem` defaults
//! to `memory`), `vcpus`/`maxvcpus` (1; `maxvcpus` defaults to `vcpus`),
//! `cmdline` or `root` + `extra`, the `on_*` actions. `disk` and `vif`
//! are kept as written for the split drivers. A key xl does not know is an
//! error here (one line naming file and line), so that a typo never goes
//! unnoticed.

use std::fmt;

use super::cfg::{Config, Setting, Value};

/// What to do when the guest stops (`on_poweroff` and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `destroy`
    Destroy,
    /// `restart`
    Restart,
    /// `rename-restart`
    RenameRestart,
    /// `preserve`
    Preserve,
    /// `coredump-destroy`
    CoredumpDestroy,
    /// `coredump-restart`
    CoredumpRestart,
    /// `soft-reset`
    SoftReset,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "destroy" => Action::Destroy,
            "restart" => Action::Restart,
            "rename-restart" => Action::RenameRestart,
            "preserve" => Action::Preserve,
            "coredump-destroy" => Action::CoredumpDestroy,
            "coredump-restart" => Action::CoredumpRestart,
            "soft-reset" => Action::SoftReset,
            _ => return None,
        })
    }

    /// xl's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::RenameRestart => "rename-restart",
            Action::Preserve => "preserve",
            Action::CoredumpDestroy => "coredump-destroy",
            Action::CoredumpRestart => "coredump-restart",
            Action::SoftReset => "soft-reset",
        }
    }
}

/// A checked PV domain configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// `name`
    pub name: String,
    /// `kernel`
    pub kernel: String,
    /// `ramdisk`
    pub ramdisk: Option<String>,
    /// The kernel command line (`cmdline`, else `root`/`extra`).
    pub cmdline: String,
    /// `memory` in MiB.
    pub memory_mib: u64,
    /// `maxmem` in MiB.
    pub maxmem_mib: u64,
    /// `vcpus`
    pub vcpus: u32,
    /// `maxvcpus`
    pub maxvcpus: u32,
    /// `cpu_weight`
    pub cpu_weight: Option<u16>,
    /// `cap`
    pub cap: Option<u16>,
    /// `on_poweroff`
    pub on_poweroff: Action,
    /// `on_reboot`
    pub on_reboot: Action,
    /// `on_crash`
    pub on_crash: Action,
    /// `on_watchdog`
    pub on_watchdog: Action,
    /// `uuid`
    pub uuid: Option<[u8; 16]>,
    /// `disk` specs, as written.
    pub disks: Vec<String>,
    /// `vif` specs, as written.
    pub vifs: Vec<String>,
    /// Warnings xl prints (e.g. `cmdline` overriding `root`/`extra`).
    pub warnings: Vec<String>,
}

/// A configuration that parses but is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where (source and line), if a setting is to blame.
    pub at: Option<(String, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some((source, line)) => write!(f, "{source}:{line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Keys of xl.cfg that this xl reads.
const IMPLEMENTED: &[&str] = &[
    "name",
    "type",
    "builder",
    "kernel",
    "ramdisk",
    "cmdline",
    "root",
    "extra",
    "memory",
    "maxmem",
    "vcpus",
    "maxvcpus",
    "cpu_weight",
    "cap",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_watchdog",
    "on_soft_reset",
    "uuid",
    "disk",
    "vif",
];

/// Other keys xl 4.17 knows (accepted, not acted on yet).
const KNOWN: &[&str] = &[
    "seclabel",
    "init_seclabel",
    "pool",
    "cpus",
    "cpus_soft",
    "max_grant_frames",
    "max_maptrack_frames",
    "max_grant_version",
    "max_event_channels",
    "localtime",
    "rtc_timeoffset",
    "vfb",
    "vkb",
    "pci",
    "vtpm",
    "channel",
    "tsc_mode",
    "vnuma",
    "iomem",
    "ioports",
    "irqs",
    "e820_host",
    "dtdev",
    "usbctrl",
    "usbdev",
    "p9",
    "pvcalls",
    "vdispl",
    "vsnd",
    "nomigrate",
    "driver_domain",
    "claim_mode",
    "device_model_version",
    "device_model_override",
    "device_model_stubdomain_override",
    "vcpu_hard_affinity",
    "vcpu_soft_affinity",
    "cpuid",
    "msr_relaxed",
    "gic_version",
    "vuart",
    "xen_platform_pci",
    "pvh",
    "nestedhvm",
    "passthrough",
    "dom0_mem",
    "shadow_memory",
    "vif_credit",
    "serial",
    "boot",
    "vga",
    "videoram",
    "acpi",
    "apic",
    "pae",
    "hap",
    "hpet",
    "viridian",
    "hdtype",
    "sdl",
    "vnc",
    "vnclisten",
    "vncpasswd",
    "vncdisplay",
    "keymap",
    "usb",
    "usbdevice",
    "soundhw",
    "xen_platform_pci",
    "pci_permissive",
    "pci_msitranslate",
    "pci_seize",
    "pci_power_mgmt",
    "rdm",
    "rdm_mem_boundary",
    "mca_caps",
    "altp2m",
    "vmtrace_buf_kb",
    "vpmu",
    "trap_unmapped_accesses",
];

fn err(s: &Setting, message: impl Into<String>) -> ConfigError {
    ConfigError { at: Some(s.at.clone()), message: message.into() }
}

/// The parsed values of one configuration.
struct Reader<'a> {
    cfg: &'a Config,
}

impl Reader<'_> {
    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(s) = self.cfg.get(key) else { return Ok(None) };
        match &s.value {
            Value::Str(v) => Ok(Some(v.clone())),
            _ => Err(err(s, format!("{key}: a string is expected"))),
        }
    }

    fn number(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ConfigError> {
        let Some(s) = self.cfg.get(key) else { return Ok(None) };
        let n = s.value.number().ok_or_else(|| err(s, format!("{key}: a number is expected")))?;
        if n < min || n > max {
            return Err(err(s, format!("{key}: {n} is out of range ({min}..{max})")));
        }
        Ok(Some(n))
    }

    fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let Some(s) = self.cfg.get(key) else { return Ok(Vec::new()) };
        let items = match &s.value {
            Value::List(items) => items.clone(),
            Value::Str(_) => vec![s.value.clone()],
            Value::Num(_) => return Err(err(s, format!("{key}: a list of strings is expected"))),
        };
        items
            .iter()
            .map(|v| v.string().map(str::to_string).ok_or_else(|| err(s, format!("{key}: nested list"))))
            .collect()
    }

    fn action(&self, key: &str, default: Action) -> Result<Action, ConfigError> {
        let Some(v) = self.string(key)? else { return Ok(default) };
        Action::parse(&v).ok_or_else(|| {
            let s = self.cfg.get(key).map(|s| s.at.clone());
            ConfigError { at: s, message: format!("Unknown {key} action \"{v}\" specified") }
        })
    }
}

/// Parses a UUID's text form.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl DomainConfig {
    /// Checks `cfg` and builds the domain configuration.
    pub fn from_cfg(cfg: &Config) -> Result<DomainConfig, ConfigError> {
        for s in cfg.settings() {
            if !IMPLEMENTED.contains(&s.name.as_str()) && !KNOWN.contains(&s.name.as_str()) {
                return Err(err(s, format!("unknown configuration key \"{}\"", s.name)));
            }
        }
        let r = Reader { cfg };
        let mut warnings = Vec::new();
        let name =
            r.string("name")?.ok_or(ConfigError { at: None, message: "Domain name must be specified.".into() })?;
        if name.is_empty() || name.starts_with('-') || name.contains('/') {
            let at = cfg.get("name").map(|s| s.at.clone());
            return Err(ConfigError { at, message: format!("invalid domain name \"{name}\"") });
        }
        if let Some(t) = r.string("type")? {
            // xl matches with strncmp(buf, ..., strlen(buf)): prefixes count.
            if t.is_empty() || !"pv".starts_with(t.as_str()) {
                let s = cfg.get("type");
                let what = if "hvm".starts_with(t.as_str()) || "pvh".starts_with(t.as_str()) {
                    format!("type \"{t}\" is not supported: only PV domains are")
                } else {
                    format!("Invalid domain type {t}.")
                };
                return Err(ConfigError { at: s.map(|s| s.at.clone()), message: what });
            }
        }
        if cfg.get("bootloader").is_some() {
            return Err(ConfigError { at: None, message: "bootloader is not supported; give a kernel".into() });
        }
        let kernel = r.string("kernel")?.ok_or(ConfigError {
            at: None,
            message: "PV domains require a kernel (no kernel= in the configuration)".into(),
        })?;
        let ramdisk = r.string("ramdisk")?;
        let (root, extra) = (r.string("root")?, r.string("extra")?);
        let cmdline = match (r.string("cmdline")?, root, extra) {
            (Some(c), root, extra) => {
                if root.is_some() || extra.is_some() {
                    warnings.push("Ignoring root, extra because cmdline is specified".to_string());
                }
                c
            }
            (None, Some(root), Some(extra)) => format!("root={root} {extra}"),
            (None, Some(root), None) => format!("root={root}"),
            (None, None, Some(extra)) => extra,
            (None, None, None) => String::new(),
        };
        let memory = r.number("memory", 1, 1 << 24)?;
        let maxmem = r.number("maxmem", 1, 1 << 24)?;
        let memory_mib = memory.or(maxmem).unwrap_or(32) as u64;
        let maxmem_mib = maxmem.map_or(memory_mib, |m| m as u64);
        if maxmem_mib < memory_mib {
            let s = cfg.get("maxmem").map(|s| s.at.clone());
            return Err(ConfigError {
                at: s,
                message: format!("maxmem ({maxmem_mib}) is less than memory ({memory_mib})"),
            });
        }
        let vcpus = r.number("vcpus", 1, 4096)?.unwrap_or(1) as u32;
        let maxvcpus = r.number("maxvcpus", 1, 4096)?.map_or(vcpus, |m| m as u32);
        if maxvcpus < vcpus {
            let s = cfg.get("maxvcpus").map(|s| s.at.clone());
            return Err(ConfigError {
                at: s,
                message: format!("maxvcpus {maxvcpus} can't be less than vcpus {vcpus}"),
            });
        }
        let cpu_weight = r.number("cpu_weight", 1, 65535)?.map(|w| w as u16);
        let cap = r.number("cap", 0, 65534)?.map(|c| c as u16);
        let uuid = match r.string("uuid")? {
            Some(u) => Some(parse_uuid(&u).ok_or_else(|| {
                let s = cfg.get("uuid").map(|s| s.at.clone());
                ConfigError { at: s, message: format!("Failed to parse UUID: {u}") }
            })?),
            None => None,
        };
        Ok(DomainConfig {
            name,
            kernel,
            ramdisk,
            cmdline,
            memory_mib,
            maxmem_mib,
            vcpus,
            maxvcpus,
            cpu_weight,
            cap,
            on_poweroff: r.action("on_poweroff", Action::Destroy)?,
            on_reboot: r.action("on_reboot", Action::Restart)?,
            on_crash: r.action("on_crash", Action::Destroy)?,
            on_watchdog: r.action("on_watchdog", Action::Destroy)?,
            uuid,
            disks: r.list("disk")?,
            vifs: r.list("vif")?,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<DomainConfig, ConfigError> {
        DomainConfig::from_cfg(&Config::parse("d.cfg", text).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn a_real_pv_config() {
        let c = config(
            "name = \"d1\"\ntype = \"pv\"\nkernel = \"/boot/vmlinuz\"\nramdisk = \"/boot/initrd\"\nroot = \"/dev/xvda1 ro\"\n\
             extra = \"console=hvc0\"\nmemory = 512\nvcpus = 2\non_reboot = 'destroy'\n\
             disk = [ 'format=raw, vdev=xvda, access=rw, target=/srv/d1.img' ]\nvif = [ 'mac=00:16:3e:00:00:01,bridge=xenbr0' ]\n",
        )
        .unwrap();
        assert_eq!(c.cmdline, "root=/dev/xvda1 ro console=hvc0");
        assert_eq!((c.memory_mib, c.maxmem_mib, c.vcpus, c.maxvcpus), (512, 512, 2, 2));
        assert_eq!((c.on_poweroff, c.on_reboot, c.on_crash), (Action::Destroy, Action::Destroy, Action::Destroy));
        assert_eq!(c.disks.len(), 1);
        assert_eq!(c.vifs, vec!["mac=00:16:3e:00:00:01,bridge=xenbr0".to_string()]);
    }

    #[test]
    fn defaults_are_xl_s() {
        let c = config("name='x'\nkernel='/k'\n").unwrap();
        assert_eq!((c.memory_mib, c.maxmem_mib, c.vcpus, c.maxvcpus), (32, 32, 1, 1));
        assert_eq!(c.on_reboot, Action::Restart);
        assert_eq!(c.cmdline, "");
        let c = config("name='x'\nkernel='/k'\nmaxmem=64\n").unwrap();
        assert_eq!((c.memory_mib, c.maxmem_mib), (64, 64));
        let c = config("name='x'\nkernel='/k'\nmemory=\"48\"\nmaxmem=96\nmaxvcpus=4\n").unwrap();
        assert_eq!((c.memory_mib, c.maxmem_mib, c.vcpus, c.maxvcpus), (48, 96, 1, 4));
    }

    #[test]
    fn cmdline_wins_with_a_warning() {
        let c = config("name='x'\nkernel='/k'\ncmdline='a'\nextra='b'\n").unwrap();
        assert_eq!(c.cmdline, "a");
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(config("name='x'\nkernel='/k'\nroot='/dev/x'\n").unwrap().cmdline, "root=/dev/x");
        assert_eq!(config("name='x'\nkernel='/k'\nextra='quiet'\n").unwrap().cmdline, "quiet");
    }

    #[test]
    fn refusals_name_the_place() {
        let e = config("name='x'\nkernel='/k'\nmemroy=5\n").unwrap_err();
        assert_eq!(e.to_string(), "d.cfg:3: unknown configuration key \"memroy\"");
        assert_eq!(config("kernel='/k'\n").unwrap_err().to_string(), "Domain name must be specified.");
        assert!(config("name='x'\n").unwrap_err().message.contains("require a kernel"));
        assert_eq!(
            config("name='x'\nkernel='/k'\nmemory='lots'\n").unwrap_err().to_string(),
            "d.cfg:3: memory: a number is expected"
        );
        assert!(config("name='x'\nkernel='/k'\nvcpus=2\nmaxvcpus=1\n")
            .unwrap_err()
            .message
            .contains("less than vcpus"));
        assert!(config("name='x'\nkernel='/k'\nmemory=64\nmaxmem=32\n")
            .unwrap_err()
            .message
            .contains("less than memory"));
        assert!(config("name='x'\nkernel='/k'\non_crash='explode'\n")
            .unwrap_err()
            .message
            .contains("Unknown on_crash action"));
        assert!(config("name='x'\nkernel='/k'\ntype='hvm'\n").unwrap_err().message.contains("not supported"));
        assert!(config("name='x'\nkernel='/k'\ntype='qq'\n").unwrap_err().message.contains("Invalid domain type"));
        assert!(config("name='x'\nkernel='/k'\nuuid='zz'\n").unwrap_err().message.contains("UUID"));
        assert!(config("name='x'\nkernel='/k'\nname=5\n").unwrap_err().message.contains("string"));
        assert!(config("name='x'\nkernel='/k'\ncpu_weight=0\n").unwrap_err().message.contains("out of range"));
        assert!(config("name='a/b'\nkernel='/k'\n").unwrap_err().message.contains("invalid domain name"));
    }

    #[test]
    fn type_prefixes_match_as_in_xl() {
        assert!(config("name='x'\nkernel='/k'\ntype='p'\n").is_ok());
        assert!(config("name='x'\nkernel='/k'\ntype='pv'\npool='Pool-0'\n").is_ok(), "known keys are accepted");
    }

    #[test]
    fn uuids_parse() {
        assert_eq!(parse_uuid("00112233-4455-6677-8899-aabbccddeeff").map(|u| u[15]), Some(0xff));
        assert_eq!(parse_uuid("0011223344556677-8899-aabbccddeeff"), None);
        assert_eq!(parse_uuid("00112233-4455-6677-8899-aabbccddeefg"), None);
    }
}
