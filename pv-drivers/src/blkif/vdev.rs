//! Virtual block device names and numbers: the devid of `xvda`, `hdc`,
//! `sdb3`, `d0p1` or a plain number, as libxl computes it.
//!
//! ```text
//! 202<<8 | disk<<4 | part    xvd, disk ≤ 15 and part ≤ 15
//! 1<<28 | disk<<8 | part     xvd otherwise (disk < 2^20, part < 256), and dDpP
//! 3<<8 | disk<<6 | part      hda, hdb (22<<8 for hdc, hdd), part ≤ 63
//! 8<<8 | disk<<4 | part      sd, disk and part ≤ 15
//! ```
//! Drive letters are bijective base 26 (`a`..`z`, `aa`..). Semantics:
//! X:`docs/man/xen-vbd-interface.7.pandoc`, `tools/libs/light/libxl_device.c
//! libxl__device_disk_dev_number`, `device_virtdisk_matches`.

use alloc::string::String;

/// `XEN_MAJOR`-style encoding of Xen's own disks.
const XVD_MAJOR: u32 = 202;
/// The extended encoding's flag.
const EXTENDED: u32 = 1 << 28;

/// A disk index and partition from `<prefix><letters>[<partition>]`,
/// within the limits; `None` if `name` does not have that shape.
fn letters_and_partition(name: &str, prefix: &str, max_disk: u32, max_part: u32) -> Option<(u32, u32)> {
    let rest = name.strip_prefix(prefix)?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 {
        return None;
    }
    let mut disk: u32 = 0;
    for (i, c) in rest.bytes().take(letters).enumerate() {
        let digit = u32::from(c - b'a');
        disk = if i == 0 { digit } else { disk.checked_add(1)?.checked_mul(26)?.checked_add(digit)? };
        if disk > max_disk {
            return None;
        }
    }
    let part = &rest[letters..];
    if part.is_empty() {
        return Some((disk, 0));
    }
    if part.starts_with('0') || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part: u32 = part.parse().ok()?;
    (part <= max_part).then_some((disk, part))
}

/// `dDpP`: disk D < 2^20, partition P < 256.
fn d_p(name: &str) -> Option<(u32, u32)> {
    let (disk, part) = name.strip_prefix('d')?.split_once('p')?;
    let num =
        |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok()).flatten();
    let (disk, part) = (num(disk)?, num(part)?);
    (disk < 1 << 20 && part < 256).then_some((disk, part))
}

/// The devid of a virtual device name, or `None` if libxl would refuse it.
pub fn devid_of(name: &str) -> Option<u32> {
    if let Some((disk, part)) = d_p(name).or_else(|| letters_and_partition(name, "xvd", (1 << 20) - 1, 255)) {
        return Some(if disk <= 15 && part <= 15 {
            XVD_MAJOR << 8 | disk << 4 | part
        } else {
            EXTENDED | disk << 8 | part
        });
    }
    if let Some(n) = plain_number(name) {
        return Some(n);
    }
    if let Some((disk, part)) = letters_and_partition(name, "hd", 3, 63) {
        let major = if disk < 2 { 3 } else { 22 };
        return Some(major << 8 | (disk & 1) << 6 | part);
    }
    letters_and_partition(name, "sd", 15, 15).map(|(disk, part)| 8 << 8 | disk << 4 | part)
}

/// `strtoul(name, 0)` accepting the whole string, ≤ `INT_MAX`.
fn plain_number(name: &str) -> Option<u32> {
    let n = if let Some(hex) = name.strip_prefix("0x").or_else(|| name.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()?
    } else if name.len() > 1 && name.starts_with('0') {
        u32::from_str_radix(&name[1..], 8).ok()?
    } else {
        name.parse().ok()?
    };
    (n <= i32::MAX as u32).then_some(n)
}

/// The bijective base-26 letters of disk index `disk` (`0` → `a`, `26` → `aa`).
fn letters(mut disk: u32) -> String {
    let mut out = alloc::vec::Vec::new();
    loop {
        out.push(b'a' + (disk % 26) as u8);
        if disk < 26 {
            break;
        }
        disk = disk / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The `xvd` name Linux's blkfront gives a devid, if it is one of Xen's
/// encodings (`xen_translate_vdev` for majors 202 and the extended form).
pub fn xvd_name(devid: u32) -> Option<String> {
    let (disk, part) = if devid & EXTENDED != 0 {
        if devid >> 28 != 1 {
            return None;
        }
        ((devid >> 8) & 0xf_ffff, devid & 0xff)
    } else if devid >> 8 == XVD_MAJOR {
        ((devid >> 4) & 0xf, devid & 0xf)
    } else {
        return None;
    };
    let mut name = String::from("xvd");
    name.push_str(&letters(disk));
    if part != 0 {
        name.push_str(&alloc::format!("{part}"));
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_number_as_in_xen_vbd_interface_7() {
        for (name, devid) in [
            ("xvda", 51712),
            ("xvda1", 51713),
            ("xvdb", 51728),
            ("xvdc", 51744),
            ("xvdp", 51952),
            ("xvdq", 0x1000_1000),
            ("xvdaa", (1 << 28) | (26 << 8)),
            ("xvda16", (1 << 28) | 16),
            ("hda", 768),
            ("hdb", 832),
            ("hdc", 5632),
            ("sda", 2048),
            ("sdb3", 2067),
            ("d0p1", 51713),
            ("d16p0", (1 << 28) | (16 << 8)),
            ("51712", 51712),
            ("0xca00", 51712),
        ] {
            assert_eq!(devid_of(name), Some(devid), "{name}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["xvd", "xvdA", "xvda0", "xvda01", "xvda256", "hde", "hda64", "sdq", "sda16", "vda", "", "d1", "-1"]
        {
            assert_eq!(devid_of(name), None, "{name}");
        }
    }

    #[test]
    fn devids_name_back_as_blkfront_names_them() {
        for name in ["xvda", "xvda1", "xvdp15", "xvdq", "xvdaa", "xvdzz", "xvdaaa3", "xvda200"] {
            let devid = devid_of(name).unwrap_or(0);
            assert_eq!(xvd_name(devid).as_deref(), Some(name), "{devid:#x}");
        }
        assert_eq!(xvd_name(768), None);
        assert_eq!(xvd_name(0x2000_0000), None);
    }
}
