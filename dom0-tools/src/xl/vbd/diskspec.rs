//! DISKSPEC: xl's disk specification strings (`disk = [ '...' ]`,
//! `xl block-attach`), parsed as libxlu's flex scanner does.
//!
//! Items are separated by commas; white space before an item is ignored.
//! Named items: `format=`, `vdev=`, `access=`, `devtype=`, `cdrom`,
//! `backend=`, `backendtype=`, `script=`, `specification=`,
//! `direct-io-safe`, `discard`/`no-discard`, `trusted`/`untrusted`, and
//! `target=`, which takes the rest of the string. Positional items fill
//! target, format, vdev and access in that order (empty ones count); a
//! deprecated prefix on the target (`phy:`, `file:`, `raw:`, ...) skips
//! the format. Semantics: X:`tools/libs/util/libxlu_disk_l.l`,
//! `libxlu_disk.c xlu_disk_parse`, `docs/man/xl-disk-configuration.5.pod`.

use std::fmt;

/// The image format (`format=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `raw` (the default).
    Raw,
    /// `qcow`.
    Qcow,
    /// `qcow2`.
    Qcow2,
    /// `vhd`.
    Vhd,
    /// `qed`.
    Qed,
    /// `empty`: a CD-ROM drive with no medium.
    Empty,
}

impl Format {
    fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "" | "raw" => Format::Raw,
            "qcow" => Format::Qcow,
            "qcow2" => Format::Qcow2,
            "vhd" => Format::Vhd,
            "qed" => Format::Qed,
            "empty" => Format::Empty,
            _ => return None,
        })
    }

    /// libxl's name for it (`libxl__device_disk_string_of_format`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow => "qcow",
            Format::Qcow2 => "qcow2",
            Format::Vhd => "vhd",
            Format::Qed => "qed",
            Format::Empty => "empty",
        }
    }
}

/// Which backend serves the disk (`backendtype=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendType {
    /// `phy`: Linux's in-kernel xen-blkback (files through a loop device).
    Phy,
    /// `tap`: blktap (not available).
    Tap,
    /// `qdisk`: a userspace backend — xenish-blkback here.
    Qdisk,
    /// `standalone`.
    Standalone,
}

/// A parsed disk specification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskSpec {
    /// `target` (libxl's `pdev_path`); empty for an empty CD-ROM.
    pub target: Option<String>,
    /// `format`.
    pub format: Option<Format>,
    /// `vdev`: the name the guest sees (`xvda`).
    pub vdev: Option<String>,
    /// `access=rw` (default) or `ro`.
    pub readwrite: bool,
    /// `devtype=cdrom` or `cdrom`.
    pub cdrom: bool,
    /// `backend=`: the backend domain's name.
    pub backend: Option<String>,
    /// `backendtype=`.
    pub backendtype: Option<BackendType>,
    /// `script=`.
    pub script: Option<String>,
    /// `specification=`.
    pub specification: Option<String>,
    /// `direct-io-safe`.
    pub direct_io_safe: bool,
    /// `discard` / `no-discard`.
    pub discard: Option<bool>,
    /// `trusted` / `untrusted`.
    pub trusted: Option<bool>,
    access_set: bool,
    had_depr_prefix: bool,
}

/// A parse error, as libxlu reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// What is wrong.
    pub message: String,
    /// The offending text, if any.
    pub near: Option<String>,
    /// The whole specification.
    pub spec: String,
}

impl fmt::Display for SpecError {
    /// `xlu__disk_err`'s text without its source prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config parsing error in disk specification: {}", self.message)?;
        if let Some(near) = &self.near {
            write!(f, ": near `{near}'")?;
        }
        write!(f, " in `{}'", self.spec)
    }
}

/// Named items without a value.
const FLAGS: &[&str] = &["cdrom", "direct-io-safe", "discard", "no-discard", "colo", "no-colo", "trusted", "untrusted"];
/// Named items with a value (up to the next comma).
const KEYS: &[&str] = &[
    "format",
    "devtype",
    "access",
    "backend",
    "backendtype",
    "specification",
    "vdev",
    "script",
    "colo-host",
    "colo-port",
    "colo-export",
    "active-disk",
    "hidden-disk",
    "grant_usage",
];
/// Deprecated prefixes that set nothing but skip the format.
const DEPRECATED: &[&str] = &["tapdisk", "tap", "tap2", "aio", "ioemu", "file", "phy"];

impl DiskSpec {
    fn err(&self, spec: &str, near: Option<&str>, message: &str) -> SpecError {
        SpecError { message: message.into(), near: near.map(str::to_string), spec: spec.into() }
    }

    fn set_string(slot: &mut Option<String>, value: &str, what: &str) -> Result<(), String> {
        match slot {
            Some(old) if !old.is_empty() => Err(format!("{what} respecified")),
            _ => {
                *slot = Some(value.to_string());
                Ok(())
            }
        }
    }

    fn set_format(&mut self, value: &str) -> Result<(), String> {
        let f = Format::parse(value).ok_or("unknown value for format")?;
        match self.format {
            Some(old) if old != f => Err("format respecified".into()),
            _ => {
                self.format = Some(f);
                Ok(())
            }
        }
    }

    fn set_access(&mut self, value: &str) -> Result<(), String> {
        self.readwrite = match value {
            "r" | "ro" => false,
            "rw" | "w" | "" => true,
            _ => return Err("unknown value for access".into()),
        };
        Ok(())
    }

    /// A `vdev:devtype` positional item; whether it was one.
    fn vdev_and_devtype(&mut self, item: &str) -> Result<bool, String> {
        let Some((vdev, devtype)) = item.rsplit_once(':') else { return Ok(false) };
        Self::set_string(&mut self.vdev, vdev, "vdev")?;
        match devtype {
            "cdrom" => self.cdrom = true,
            "disk" => self.cdrom = false,
            _ => return Err("unknown deprecated type".into()),
        }
        Ok(true)
    }

    fn named(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "format" => self.set_format(value),
            "devtype" => {
                self.cdrom = match value {
                    "cdrom" => true,
                    "disk" => false,
                    _ => return Err("unknown value for type".into()),
                };
                Ok(())
            }
            "access" => self.set_access(value),
            "backend" => Self::set_string(&mut self.backend, value, "backend"),
            "backendtype" => {
                let t = match value {
                    "phy" => BackendType::Phy,
                    "tap" => BackendType::Tap,
                    "qdisk" => BackendType::Qdisk,
                    "standalone" => BackendType::Standalone,
                    _ => return Err("unknown value for backendtype".into()),
                };
                if self.backendtype.is_some_and(|old| old != t) {
                    return Err("backend respecified".into());
                }
                self.backendtype = Some(t);
                Ok(())
            }
            "specification" => match value {
                "xen" | "virtio" => Self::set_string(&mut self.specification, value, "specification"),
                _ => Err("unknown value for specification".into()),
            },
            "vdev" => Self::set_string(&mut self.vdev, value, "vdev"),
            "script" => Self::set_string(&mut self.script, value, "script"),
            "grant_usage" if value == "0" || value == "1" => Ok(()),
            "colo-port" if value.parse::<u32>().is_ok_and(|p| p != 0) => Ok(()),
            "colo-port" => Err("unknown value for colo_port".into()),
            _ => Ok(()),
        }
    }

    fn flag(&mut self, flag: &str) {
        match flag {
            "cdrom" => self.cdrom = true,
            "direct-io-safe" => self.direct_io_safe = true,
            "discard" => self.discard = Some(true),
            "no-discard" => self.discard = Some(false),
            "trusted" => self.trusted = Some(true),
            "untrusted" => self.trusted = Some(false),
            _ => {}
        }
    }

    fn positional(&mut self, item: &str) -> Result<(), String> {
        if self.target.is_none() {
            self.target = Some(item.to_string());
        } else if !self.had_depr_prefix && self.format.is_none() {
            if self.target.as_deref() == Some("") && self.vdev_and_devtype(item)? {
                self.format = Some(Format::Empty);
            } else {
                self.set_format(item)?;
            }
        } else if self.vdev.is_none() {
            if !self.vdev_and_devtype(item)? {
                Self::set_string(&mut self.vdev, item, "vdev")?;
            }
        } else if !self.access_set {
            self.access_set = true;
            self.set_access(item)?;
        } else {
            return Err("too many positional parameters".into());
        }
        Ok(())
    }

    /// Parses one item at the start of `rest`; how many bytes it took.
    fn item(&mut self, rest: &str) -> Result<usize, (Option<String>, String)> {
        let comma = rest.find(',');
        let upto = |s: &str| s.find(',').map_or(s.len(), |c| c + 1);
        let token = &rest[..comma.unwrap_or(rest.len())];
        let taken = upto(rest);
        if let Some(target) = rest.strip_prefix("target=") {
            let t = target.strip_suffix(',').unwrap_or(target);
            Self::set_string(&mut self.target, t, "target").map_err(|e| (Some(t.into()), e))?;
            return Ok(rest.len());
        }
        if let Some((key, value)) = token.split_once('=') {
            if KEYS.contains(&key) {
                self.named(key, value).map_err(|e| (Some(value.into()), e))?;
                return Ok(taken);
            }
            if key.starts_with(|c: char| c.is_ascii_lowercase())
                && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err((Some(token.into()), "unknown parameter".into()));
            }
            return Err((Some(rest.into()), "bad disk syntax".into()));
        }
        if FLAGS.contains(&token) {
            self.flag(token);
            return Ok(taken);
        }
        // Deprecated prefixes: `word:` at the start of an item. Known ones
        // always match (flex counts their trailing context); an unknown one
        // is an error unless a letter or digit follows (`hdc:cdrom`).
        if let Some((prefix, after)) = rest.split_once(':') {
            let word = prefix.starts_with(|c: char| c.is_ascii_lowercase())
                && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if word {
                let map_err = |e: String| (Some(prefix.to_string()), e);
                let known = match prefix {
                    "raw" | "qcow" | "qcow2" | "vhd" => {
                        self.set_format(prefix).map_err(map_err)?;
                        true
                    }
                    "iscsi" | "nbd" | "enbd" | "drbd" => {
                        Self::set_string(&mut self.script, &format!("block-{prefix}"), "script").map_err(map_err)?;
                        true
                    }
                    p => DEPRECATED.contains(&p),
                };
                if known {
                    self.had_depr_prefix = true;
                    return Ok(prefix.len() + 1);
                }
                if !after.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
                    return Err((Some(rest.into()), "unknown deprecated disk prefix".into()));
                }
            }
        }
        self.positional(token).map_err(|e| (Some(token.into()), e))?;
        Ok(taken)
    }
}

/// Parses one DISKSPEC (several strings are one spec joined by commas).
pub fn parse(spec: &str) -> Result<DiskSpec, SpecError> {
    let mut d = DiskSpec { readwrite: true, ..DiskSpec::default() };
    let mut pos = 0;
    while pos < spec.len() {
        let rest = &spec[pos..];
        let ws = rest.len() - rest.trim_start_matches([' ', '\t', '\n']).len();
        if ws > 0 {
            pos += ws;
            continue;
        }
        match d.item(rest) {
            Ok(n) => pos += n.max(1),
            Err((near, message)) => return Err(d.err(spec, near.as_deref(), &message)),
        }
    }
    if d.cdrom {
        d.readwrite = false;
        if d.target.as_deref().is_none_or(str::is_empty) {
            d.format = Some(Format::Empty);
        }
    }
    if d.format.is_none() {
        d.format = Some(Format::Raw);
    }
    if d.vdev.is_none() {
        return Err(d.err(spec, None, "no vdev specified"));
    }
    if d.target.is_none() && !d.cdrom {
        return Err(d.err(spec, None, "no target specified"));
    }
    if let Some(t) = &mut d.target {
        if !t.is_empty() && !t.starts_with('/') {
            t.insert_str(0, "/dev/");
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> DiskSpec {
        parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    #[test]
    fn named_items_in_any_order_with_target_last() {
        let d = ok("format=raw, vdev=xvda, access=rw, target=/srv/d1.img");
        assert_eq!(d.target.as_deref(), Some("/srv/d1.img"));
        assert_eq!((d.format, d.vdev.as_deref(), d.readwrite), (Some(Format::Raw), Some("xvda"), true));
        let d = ok("vdev=xvdb,access=ro,backendtype=phy,target=/a,b=c.img");
        assert_eq!(d.target.as_deref(), Some("/a,b=c.img"), "target takes the rest");
        assert_eq!((d.readwrite, d.backendtype), (false, Some(BackendType::Phy)));
        let d = ok("vdev=xvdc, devtype=cdrom, target=/srv/cd.iso");
        assert!(d.cdrom && !d.readwrite);
        let d = ok("vdev=xvdd,no-discard,untrusted,direct-io-safe,target=/x");
        assert_eq!((d.discard, d.trusted, d.direct_io_safe), (Some(false), Some(false), true));
    }

    #[test]
    fn positional_items_fill_target_format_vdev_access() {
        let d = ok("/srv/d.img,raw,xvda,w");
        assert_eq!(
            (d.target.as_deref(), d.format, d.vdev.as_deref()),
            (Some("/srv/d.img"), Some(Format::Raw), Some("xvda"))
        );
        let d = ok("/srv/d.img,,xvdb,ro");
        assert_eq!((d.format, d.readwrite), (Some(Format::Raw), false), "an empty format counts");
        let d = ok("vg/lv,,xvdc");
        assert_eq!(d.target.as_deref(), Some("/dev/vg/lv"));
        let d = ok(",,hdc:cdrom,r");
        assert!(d.cdrom && d.format == Some(Format::Empty) && d.vdev.as_deref() == Some("hdc"));
    }

    #[test]
    fn deprecated_prefixes_skip_the_format() {
        let d = ok("phy:/dev/vg/guest,xvda,w");
        assert_eq!((d.target.as_deref(), d.vdev.as_deref(), d.readwrite), (Some("/dev/vg/guest"), Some("xvda"), true));
        let d = ok("file:/srv/d.img,xvdb,r");
        assert_eq!((d.vdev.as_deref(), d.readwrite), (Some("xvdb"), false));
        let d = ok("qcow2:/srv/d.qcow2,xvdc,w");
        assert_eq!(d.format, Some(Format::Qcow2));
        let d = ok("drbd:res0,xvdd,w");
        assert_eq!(d.script.as_deref(), Some("block-drbd"));
    }

    #[test]
    fn errors_name_the_offending_text() {
        let e = |spec: &str| parse(spec).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            e("vdev=xvda,frob=1,target=/x"),
            "config parsing error in disk specification: unknown parameter: near `frob=1' in `vdev=xvda,frob=1,target=/x'"
        );
        assert!(e("/x,raw,xvda,rw,extra").contains("too many positional parameters: near `extra'"));
        assert!(e("/x,raw").contains("no vdev specified in `/x,raw'"));
        assert!(e("vdev=xvda").contains("no target specified"));
        assert!(e("/x,bogus,xvda").contains("unknown value for format: near `bogus'"));
        assert!(e("format=raw,format=vhd,vdev=xvda,target=/x").contains("format respecified"));
        assert!(e("/x,,xvda,rx").contains("unknown value for access"));
        assert!(e("nope:/x,xvda").contains("unknown deprecated disk prefix"));
        assert!(e("vdev=xvda,backendtype=lvm,target=/x").contains("unknown value for backendtype"));
        assert!(e("/x=y,,xvda").contains("bad disk syntax"));
    }
}
