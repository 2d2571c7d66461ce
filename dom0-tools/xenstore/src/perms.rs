//! Node permissions: the `{domid, r/w/b/n}` lists and who gets what.
//!
//! Semantics: X:`tools/xenstore/xenstored_core.c` `perm_for_conn`,
//! `tools/xenstore/xs_lib.c` `xs_strings_to_perms`/`xs_perm_to_string`
//! (Xen 4.17). Entry 0 names the owner and the default for everyone not
//! listed; privileged callers, the owner and a domain whose `SET_TARGET`
//! target is the owner get everything, including the owner right.

use guest_abi::XenError;

use crate::wire::strtol;

/// `XS_PERM_NONE`: no access.
pub const XS_PERM_NONE: u32 = 0;
/// `XS_PERM_READ`
pub const XS_PERM_READ: u32 = 1;
/// `XS_PERM_WRITE`
pub const XS_PERM_WRITE: u32 = 2;
/// `XS_PERM_OWNER`: internal, never stored; the right to set permissions.
pub const XS_PERM_OWNER: u32 = 8;
/// `XS_PERM_IGNORE`: internal; an entry naming a domain that does not
/// exist (or died after the node was written) and must not apply.
pub const XS_PERM_IGNORE: u32 = 16;

/// One `struct xs_permissions` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// The domain the entry is for.
    pub id: u32,
    /// `XS_PERM_*` bits.
    pub perms: u32,
}

/// A node's permission list; never empty (entry 0 is the owner).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perms(Vec<Perm>);

impl Perms {
    /// A list with just the owner entry.
    pub fn owned_by(owner: u32, perms: u32) -> Perms {
        Perms(vec![Perm { id: owner, perms }])
    }

    /// A list from entries, `None` if there are none.
    pub fn new(entries: Vec<Perm>) -> Option<Perms> {
        if entries.is_empty() {
            None
        } else {
            Some(Perms(entries))
        }
    }

    /// The entries, owner first.
    pub fn entries(&self) -> &[Perm] {
        &self.0
    }

    /// The entries, for marking some as ignored.
    pub(crate) fn entries_mut(&mut self) -> &mut [Perm] {
        &mut self.0
    }

    /// The owner entry.
    pub fn owner_entry(&self) -> Perm {
        self.0.first().copied().unwrap_or(Perm { id: 0, perms: XS_PERM_NONE })
    }

    /// The owning domain.
    pub fn owner(&self) -> u32 {
        self.owner_entry().id
    }

    /// Makes `owner` the owner, keeping the rest.
    pub fn set_owner(&mut self, owner: u32) {
        if let Some(first) = self.0.first_mut() {
            first.id = owner;
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a list has at least its owner.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `xs_strings_to_perms`: `count` NUL-terminated entries like `r5`,
    /// `w0x10`, `b7`, `n0`. The id is read as C's `strtol(p, &end, 0)`.
    pub fn parse(strings: &[&[u8]]) -> Result<Perms, XenError> {
        let mut entries = Vec::with_capacity(strings.len());
        for s in strings {
            let (&letter, id) = s.split_first().ok_or(XenError::Einval)?;
            let perms = match letter {
                b'r' => XS_PERM_READ,
                b'w' => XS_PERM_WRITE,
                b'b' => XS_PERM_READ | XS_PERM_WRITE,
                b'n' => XS_PERM_NONE,
                _ => return Err(XenError::Einval),
            };
            if id.is_empty() {
                return Err(XenError::Einval);
            }
            let (value, used) = strtol(id);
            if used != id.len() {
                return Err(XenError::Einval);
            }
            // C stores the long in an unsigned int: keep the low 32 bits.
            entries.push(Perm { id: value as u32, perms });
        }
        Perms::new(entries).ok_or(XenError::Einval)
    }

    /// `perms_to_strings`: the `GET_PERMS` reply, each entry as
    /// `<letter><id>\0` with the id printed as a C `int`.
    pub fn to_strings(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.0 {
            let letter = match p.perms & !XS_PERM_IGNORE & (XS_PERM_READ | XS_PERM_WRITE) {
                XS_PERM_READ => 'r',
                XS_PERM_WRITE => 'w',
                x if x == XS_PERM_READ | XS_PERM_WRITE => 'b',
                _ => 'n',
            };
            out.extend_from_slice(format!("{letter}{}", p.id as i32).as_bytes());
            out.push(0);
        }
        out
    }
}

/// Who is asking: what `perm_for_conn` needs to know about a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `conn->id`: the domain of a ring connection, 0 for a socket.
    pub id: u32,
    /// dom0, the `--priv-domid` domain and socket peers.
    pub privileged: bool,
    /// The `SET_TARGET` target's domain id, if any.
    pub target: Option<u32>,
}

impl Identity {
    /// A privileged identity (socket peers, dom0).
    pub const fn privileged(id: u32) -> Identity {
        Identity { id, privileged: true, target: None }
    }

    fn matches(&self, id: u32) -> bool {
        id == self.id || self.target == Some(id)
    }
}

/// `perm_for_conn`: the `XS_PERM_*` rights `who` has on a node with `perms`.
pub fn perm_for(who: &Identity, perms: &Perms) -> u32 {
    let all = XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER;
    if who.privileged || who.matches(perms.owner()) {
        return all;
    }
    for p in perms.entries().iter().skip(1) {
        if p.perms & XS_PERM_IGNORE == 0 && who.matches(p.id) {
            return p.perms & all;
        }
    }
    perms.owner_entry().perms & all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Perms, XenError> {
        let v: Vec<&[u8]> = list.iter().map(|s| s.as_bytes()).collect();
        Perms::parse(&v)
    }

    #[test]
    fn parse_and_print_round_trip() {
        let p = parse(&["n5", "r0", "w7", "b0x10", "r010"]).unwrap();
        assert_eq!(p.owner(), 5);
        assert_eq!(p.entries()[3], Perm { id: 16, perms: XS_PERM_READ | XS_PERM_WRITE });
        assert_eq!(p.entries()[4].id, 8, "strtol base 0 reads octal");
        assert_eq!(p.to_strings(), b"n5\0r0\0w7\0b16\0r8\0");
        assert_eq!(parse(&["r-1"]).unwrap().to_strings(), b"r-1\0");
    }

    #[test]
    fn parse_rejects_what_xen_rejects() {
        assert_eq!(parse(&["x1"]), Err(XenError::Einval));
        assert_eq!(parse(&["r"]), Err(XenError::Einval));
        assert_eq!(parse(&["r1a"]), Err(XenError::Einval));
        assert_eq!(parse(&[""]), Err(XenError::Einval));
        assert_eq!(parse(&[]), Err(XenError::Einval));
    }

    #[test]
    fn owner_target_and_entries() {
        let p = parse(&["n5", "r6", "b7"]).unwrap();
        let dom = |id| Identity { id, privileged: false, target: None };
        assert_eq!(perm_for(&dom(5), &p), XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER);
        assert_eq!(perm_for(&dom(6), &p), XS_PERM_READ);
        assert_eq!(perm_for(&dom(7), &p), XS_PERM_READ | XS_PERM_WRITE);
        assert_eq!(perm_for(&dom(8), &p), XS_PERM_NONE);
        assert_eq!(perm_for(&Identity::privileged(0), &p), XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER);
        let stubdom = Identity { id: 9, privileged: false, target: Some(5) };
        assert_eq!(perm_for(&stubdom, &p), XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER);
        let mut ignored = p.clone();
        ignored.entries_mut()[1].perms |= XS_PERM_IGNORE;
        assert_eq!(perm_for(&dom(6), &ignored), XS_PERM_NONE, "ignored entries fall back to the owner's");
    }
}
