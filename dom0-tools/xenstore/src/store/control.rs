//! `CONTROL` (alias `DEBUG`): the daemon's maintenance commands.
//!
//! Semantics: X:`tools/xenstore/xenstored_control.c` `do_control` (Xen
//! 4.17). Served: `check`, `help`, `log on|off`, `print <text>`,
//! `quota [<domid> | <name> <value>]`, `memreport` (a summary). Unknown
//! commands and wrong argument counts are `EINVAL`; live update and the
//! tracing controls of Xen's daemon are not offered.

use core::fmt::Write as _;

use guest_abi::XenError;

use super::dispatch::ack;
use super::{Ctx, XenStore};
use crate::wire::strings;

/// The commands and their usage, for `help`.
const COMMANDS: [(&str, &str); 6] = [
    ("check", ""),
    ("help", ""),
    ("log", "on|off"),
    ("memreport", ""),
    ("print", "<string>"),
    ("quota", "[[<domid>]|[<quota> <val>]]"),
];

/// A text reply with its NUL.
fn text(mut s: String) -> Vec<u8> {
    s.push('\0');
    s.into_bytes()
}

impl XenStore {
    /// `CONTROL cmd\0args...`.
    pub(super) fn do_control(&mut self, ctx: &mut Ctx, payload: &[u8]) -> Result<Vec<u8>, XenError> {
        let args = strings(payload);
        let (cmd, args) = args.split_first().ok_or(XenError::Einval)?;
        let args: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        match (*cmd, args.as_slice()) {
            (b"check", []) => Ok(ack()),
            (b"help", []) => {
                let mut out = String::from("Valid commands:\n");
                for (name, usage) in COMMANDS {
                    let _ = writeln!(out, "{name} {usage}");
                }
                Ok(text(out))
            }
            (b"log", [on_off]) if on_off == "on" || on_off == "off" => {
                ctx.platform.log(&format!("logging {on_off} requested"));
                Ok(ack())
            }
            (b"print", [msg]) => {
                ctx.platform.log(msg);
                Ok(ack())
            }
            (b"memreport", []) => Ok(text(self.memreport())),
            (b"quota", []) => {
                let mut out = String::from("Quota settings:\n");
                for (name, value, descr) in self.config.quotas.table() {
                    let _ = writeln!(out, "{name:<17}: {value:>8} {descr}");
                }
                Ok(text(out))
            }
            (b"quota", [domid]) => {
                let domid = domid.parse::<u16>().map_err(|_| XenError::Einval)?;
                let u = self.usage(domid).ok_or(XenError::Enoent)?;
                let mut out = format!("Domain {domid}:\n");
                for (name, value) in [
                    ("nodes", u64::from(u.nodes)),
                    ("watches", u64::from(u.watches)),
                    ("transactions", u64::from(u.transactions)),
                    ("outstanding", u64::from(u.outstanding)),
                    ("memory", u.memory),
                ] {
                    let _ = writeln!(out, "{name:<16}: {value:>8}");
                }
                Ok(text(out))
            }
            (b"quota", [name, value]) => {
                let value = value.parse::<u32>().map_err(|_| XenError::Einval)?;
                if self.config.quotas.set(name, value) {
                    Ok(ack())
                } else {
                    Err(XenError::Einval)
                }
            }
            _ => Err(XenError::Einval),
        }
    }

    /// A short summary of what the store holds.
    fn memreport(&self) -> String {
        let bytes: usize = self.nodes.iter().map(|(name, n)| n.memory(name)).sum();
        let watches: usize = self.conns.values().map(|c| c.watches.len()).sum();
        let transactions: usize = self.conns.values().map(|c| c.transactions.len()).sum();
        format!(
            "nodes: {} ({bytes} bytes)\nconnections: {}\nwatches: {watches}\ntransactions: {transactions}\n",
            self.nodes.len(),
            self.conns.len()
        )
    }
}
