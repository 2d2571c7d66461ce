//! Privilege checks: Xen's XSM dummy policy (X:`xen/include/xsm/dummy.h`)
//! as one typed API.
//!
//! A handler that acts on a domain named by a `domid` argument asks
//! [`Ctx::target`] with the [`Action`] it performs; the answer is the
//! domain, or Xen's errno in Xen's order: the lookup first (`-ESRCH` for a
//! domain that does not exist), then the policy (`-EPERM`). A handler that
//! needs privilege itself (XSM_PRIV) asks [`Ctx::privileged`] for a
//! [`Privileged`] token, which nothing else can make. Handlers read no
//! `Domain::privileged` flag of their own: whether a check exists, and
//! which errno it gives, is decided here.
//!
//! The dummy policy's levels, as xenish has them: XSM_HOOK (anyone) needs
//! no check; XSM_TARGET and XSM_DM_PRIV (the caller itself, or any domain
//! for a privileged caller; xenish has no device-model stub domains) are
//! [`Action::Target`], [`Action::PgOwner`] and [`Action::Remote`], which
//! differ only in how Xen looks the domain up; XSM_PRIV is
//! [`Action::Control`] and [`Ctx::privileged`].

use guest_abi::errno::XenError;
use guest_abi::xen::DOMID_SELF;

use super::{Ctx, Peers};
use crate::domain::{DomId, Domain};

/// Proof that the calling domain is privileged (Xen's
/// `is_control_domain`): made only by [`Ctx::privileged`] and
/// [`privileged`].
#[derive(Clone, Copy, Debug)]
pub struct Privileged(());

/// What a hypercall does to the domain a `domid` argument names, which
/// fixes how the domain is looked up and which check applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Act on any domain (Xen's `rcu_lock_domain_by_any_id`, then
    /// XSM_TARGET): `DOMID_SELF` or the caller's own ID is the caller;
    /// another domain must exist (`-ESRCH`) and needs privilege
    /// (`-EPERM`).
    Target,
    /// Name the owner of the pages a batch works on (Xen's `get_pg_owner`,
    /// then XSM_TARGET): `DOMID_SELF` is the caller, but the caller's own
    /// ID is refused as a foreign domain (`-ESRCH`), as are unknown IDs;
    /// another domain needs privilege (`-EPERM`).
    PgOwner,
    /// Act on another domain (Xen's `rcu_lock_remote_domain_by_id`, then
    /// XSM_DM_PRIV): `DOMID_SELF` names no domain (`-ESRCH`), the caller's
    /// own ID is refused (`-EPERM`); another domain must exist (`-ESRCH`)
    /// and needs privilege (`-EPERM`).
    Remote,
    /// A toolstack operation (as `domctl`): a domain named by its ID
    /// (Xen's `rcu_lock_domain_by_id`: `DOMID_SELF` names none, `-ESRCH`),
    /// then XSM_PRIV: only a privileged caller, even on itself (`-EPERM`).
    Control,
}

/// [`Ctx::privileged`] for code that holds the calling domain rather than
/// a [`Ctx`] (the trap handlers).
pub fn privileged(caller: &Domain) -> Result<Privileged, XenError> {
    if caller.privileged {
        Ok(Privileged(()))
    } else {
        Err(XenError::Eperm)
    }
}

/// [`Ctx::target`] on the caller and its peers, for a handler that goes
/// on to use other parts of its [`Ctx`] while it holds the domain.
pub fn target<'d>(
    caller: &'d mut Domain,
    peers: &'d mut Peers,
    domid: DomId,
    action: Action,
) -> Result<&'d mut Domain, XenError> {
    let allowed = privileged(caller).is_ok();
    let own = match action {
        Action::Target => domid == DOMID_SELF || domid == caller.id,
        Action::PgOwner if domid == caller.id => return Err(XenError::Esrch),
        Action::PgOwner => domid == DOMID_SELF,
        Action::Remote if domid == DOMID_SELF => return Err(XenError::Esrch),
        Action::Remote if domid == caller.id => return Err(XenError::Eperm),
        Action::Remote => false,
        Action::Control => domid == caller.id,
    };
    let domain = if own { caller } else { peers.get_mut(domid).ok_or(XenError::Esrch)? };
    if allowed || (own && action != Action::Control) {
        Ok(domain)
    } else {
        Err(XenError::Eperm)
    }
}

impl Ctx<'_> {
    /// XSM_PRIV: the calling domain's privilege, or `-EPERM`.
    pub fn privileged(&self) -> Result<Privileged, XenError> {
        privileged(self.domain)
    }

    /// Whether the caller is privileged, for what privilege changes
    /// rather than refuses (a limit, a reported feature, a different
    /// errno). A refusal asks [`Ctx::privileged`].
    pub fn is_privileged(&self) -> bool {
        self.privileged().is_ok()
    }

    /// The domain `domid` names, if the caller may perform `action` on
    /// it; else Xen's errno (see [`Action`]).
    pub fn target(&mut self, domid: DomId, action: Action) -> Result<&mut Domain, XenError> {
        target(self.domain, &mut self.peers, domid, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::Mfn;

    /// Every action's answer for every kind of name, against Xen's
    /// lookups and dummy policy: (DOMID_SELF, own ID, another domain, no
    /// domain) for an unprivileged and a privileged caller.
    #[test]
    fn actions_answer_as_xens_lookups_and_dummy_policy() {
        use XenError::{Eperm, Esrch};
        type Row = [Result<bool, XenError>; 4];
        // Ok(true): the caller; Ok(false): the other domain.
        let cases: [(Action, Row, Row); 4] = [
            (Action::Target, [Ok(true), Ok(true), Err(Eperm), Err(Esrch)], [Ok(true), Ok(true), Ok(false), Err(Esrch)]),
            (
                Action::PgOwner,
                [Ok(true), Err(Esrch), Err(Eperm), Err(Esrch)],
                [Ok(true), Err(Esrch), Ok(false), Err(Esrch)],
            ),
            (
                Action::Remote,
                [Err(Esrch), Err(Eperm), Err(Eperm), Err(Esrch)],
                [Err(Esrch), Err(Eperm), Ok(false), Err(Esrch)],
            ),
            (
                Action::Control,
                [Err(Esrch), Err(Eperm), Err(Eperm), Err(Esrch)],
                [Err(Esrch), Ok(true), Ok(false), Err(Esrch)],
            ),
        ];
        for (action, unprivileged, privileged) in cases {
            for (is_privileged, row) in [(false, unprivileged), (true, privileged)] {
                let mut domains =
                    std::vec![Domain::new(3, "caller", is_privileged, Mfn(1)), Domain::new(5, "other", false, Mfn(2)),];
                let (caller, mut peers) = Peers::split(&mut domains, 0).unwrap();
                for (domid, want) in [DOMID_SELF, 3, 5, 9].into_iter().zip(row) {
                    let got = target(&mut *caller, &mut peers, domid, action).map(|d| d.id == 3);
                    assert_eq!(got, want, "{action:?} privileged={is_privileged} domid={domid:#x}");
                }
            }
        }
    }
}
