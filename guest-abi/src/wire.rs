//! C unions, which this crate stores as the bytes of their widest member:
//! each member is read and written as its own view struct, by copy, so no
//! reference into the storage ever has the wrong type.

use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Reads the member `T` from the start of a union's storage.
pub(crate) fn read_member<T: FromBytes>(storage: &[u8]) -> T {
    match T::read_from_prefix(storage) {
        Ok((member, _)) => member,
        // Unreachable: `union_members!` asserts at compile time that every
        // member fits its storage.
        Err(_) => T::new_zeroed(),
    }
}

/// Makes `member` the union's content; bytes past it are zeroed.
pub(crate) fn write_member<T: IntoBytes + Immutable>(storage: &mut [u8], member: &T) {
    let bytes = member.as_bytes();
    let n = bytes.len().min(storage.len());
    storage[..n].copy_from_slice(&bytes[..n]);
    storage[n..].fill(0);
}

/// Getter and setter pairs for the members of a union field:
/// `get / set: field: Storage => Member, "C member path";`.
macro_rules! union_members {
    ($( $get:ident / $set:ident : $field:ident : $st:ty => $ty:ty, $c:literal; )*) => {
        $(
            #[doc = concat!("Reads the union member `", $c, "`.")]
            pub fn $get(&self) -> $ty {
                const { assert!(core::mem::size_of::<$ty>() <= core::mem::size_of::<$st>()) };
                $crate::wire::read_member(zerocopy::IntoBytes::as_bytes(&self.$field))
            }
            #[doc = concat!("Sets the union member `", $c, "` (the rest of the union is zeroed).")]
            pub fn $set(&mut self, member: $ty) {
                $crate::wire::write_member(zerocopy::IntoBytes::as_mut_bytes(&mut self.$field), &member)
            }
        )*
    };
}
pub(crate) use union_members;
