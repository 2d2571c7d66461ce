//! XenStore for the pv-drivers engines, over guest-rt's own client:
//! [`Store`] with `switch_state` as one transaction, retried on `EAGAIN`.

use alloc::format;
use alloc::string::String;

use guest_abi::XenError;
use pv_drivers::store::{Store, StoreError};
use pv_drivers::xenbus::XenbusState;

use crate::xenstore::{EventPort, TxId, XenStore, XsError};

/// Attempts at a transaction that keeps conflicting.
const RETRIES: usize = 10;

/// A [`XenStore`] client as a [`Store`].
pub struct GuestStore<'a, P: EventPort>(pub &'a mut XenStore<P>);

fn store_error(e: XsError) -> StoreError {
    if e.is(XenError::Eacces) {
        StoreError::Denied
    } else {
        StoreError::Other(format!("{e}"))
    }
}

impl<P: EventPort> Store for GuestStore<'_, P> {
    fn read(&mut self, path: &str) -> Result<Option<String>, StoreError> {
        match self.0.read(TxId::NONE, path) {
            Ok(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
            Err(e) if e.is(XenError::Enoent) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    fn write(&mut self, path: &str, value: &str) -> Result<(), StoreError> {
        self.0.write(TxId::NONE, path, value.as_bytes()).map_err(store_error)
    }

    fn switch_state(&mut self, dir: &str, state: XenbusState, entries: &[(&str, String)]) -> Result<bool, StoreError> {
        let state_path = format!("{dir}/state");
        let value = format!("{}", state.to_raw());
        for _ in 0..RETRIES {
            let tx = self.0.transaction_start().map_err(store_error)?;
            let body = |xs: &mut XenStore<P>| -> Result<bool, XsError> {
                match xs.read(tx, &state_path) {
                    Err(e) if e.is(XenError::Enoent) => return Ok(false),
                    Err(e) => return Err(e),
                    Ok(_) => {}
                }
                for (k, v) in entries {
                    xs.write(tx, &format!("{dir}/{k}"), v.as_bytes())?;
                }
                xs.write(tx, &state_path, value.as_bytes())?;
                Ok(true)
            };
            match body(self.0) {
                Ok(true) => {}
                Ok(false) => {
                    let _ = self.0.transaction_abort(tx);
                    return Ok(false);
                }
                Err(e) => {
                    let _ = self.0.transaction_abort(tx);
                    return Err(store_error(e));
                }
            }
            match self.0.transaction_commit(tx) {
                Ok(()) => return Ok(true),
                Err(e) if e.is(XenError::Eagain) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(StoreError::Other("transaction retries exhausted".into()))
    }
}
