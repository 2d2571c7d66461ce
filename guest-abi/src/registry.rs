//! Every ABI definition of this crate with its C spelling and header: what
//! the conformance test compares with Xen's own headers. The
//! [`xen_consts!`](crate::xen_consts) and [`xen_struct!`](crate::xen_struct)
//! macros fill it at the definition site, so nothing can be defined without
//! being checked.

/// A constant and where it comes from.
#[derive(Clone, Copy, Debug)]
pub struct Const {
    /// The Rust name.
    pub rust: &'static str,
    /// The C name (a macro or enumerator in `header`).
    pub c: &'static str,
    /// The value.
    pub value: i128,
    /// The public header defining it (under `xen/`).
    pub header: &'static str,
}

/// A struct field: Rust and C names, offset and size.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The Rust field name.
    pub rust: &'static str,
    /// The C member name; empty for padding that C leaves implicit.
    pub c: &'static str,
    /// Offset in bytes.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// For an integer field (or array of integers): whether it is signed.
    pub signed: Option<bool>,
    /// Whether the field is an array (signedness is its elements').
    pub array: bool,
}

/// Signedness of a field's type, so the probe can check it too.
pub trait FieldSign {
    /// `Some(signed)` for integers and arrays of integers.
    const SIGNED: Option<bool> = None;
    /// Whether the type is an array.
    const ARRAY: bool = false;
}

macro_rules! field_sign {
    ($($t:ty => $s:expr),*) => { $( impl FieldSign for $t { const SIGNED: Option<bool> = Some($s); } )* };
}
field_sign!(u8 => false, u16 => false, u32 => false, u64 => false, usize => false, i8 => true, i16 => true, i32 => true, i64 => true);

impl<T: FieldSign, const N: usize> FieldSign for [T; N] {
    // Only one level: arrays of arrays are checked by size alone.
    const SIGNED: Option<bool> = if T::ARRAY { None } else { T::SIGNED };
    const ARRAY: bool = true;
}

/// A struct's layout.
#[derive(Clone, Copy, Debug)]
pub struct StructLayout {
    /// The Rust type name.
    pub rust: &'static str,
    /// The C type (`struct name`).
    pub c: &'static str,
    /// The public header defining it.
    pub header: &'static str,
    /// `size_of`.
    pub size: usize,
    /// `align_of`.
    pub align: usize,
    /// Every field, in order.
    pub fields: &'static [Field],
}

/// A value from the other side that the enumeration does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownValue(pub u64);

/// Implemented by every mirrored struct.
pub trait Described {
    /// The struct's layout.
    const LAYOUT: StructLayout;
}

/// All constants of the crate.
pub fn consts() -> impl Iterator<Item = &'static Const> {
    let lists: [&'static [Const]; 19] = [
        crate::xen::CONSTS,
        crate::arch_x86::CONSTS,
        crate::elfnote::CONSTS,
        crate::errno::CONSTS,
        crate::event_channel::CONSTS,
        crate::grant_table::CONSTS,
        crate::memory::CONSTS,
        crate::sched::CONSTS,
        crate::vcpu::CONSTS,
        crate::callback::CONSTS,
        crate::physdev::CONSTS,
        crate::version::CONSTS,
        crate::features::CONSTS,
        crate::io::blkif::CONSTS,
        crate::io::netif::CONSTS,
        crate::io::console::CONSTS,
        crate::io::xs_wire::CONSTS,
        crate::io::xenbus::CONSTS,
        crate::io::ring::CONSTS,
    ];
    lists.into_iter().flatten()
}

/// All structs of the crate.
pub fn structs() -> impl Iterator<Item = &'static StructLayout> {
    let lists: [&'static [StructLayout]; 14] = [
        crate::xen::STRUCTS,
        crate::arch_x86::STRUCTS,
        crate::event_channel::STRUCTS,
        crate::grant_table::STRUCTS,
        crate::memory::STRUCTS,
        crate::sched::STRUCTS,
        crate::vcpu::STRUCTS,
        crate::callback::STRUCTS,
        crate::physdev::STRUCTS,
        crate::version::STRUCTS,
        crate::io::blkif::STRUCTS,
        crate::io::netif::STRUCTS,
        crate::io::console::STRUCTS,
        crate::io::xs_wire::STRUCTS,
    ];
    lists.into_iter().flatten()
}

/// Declares constants with their C names, and registers them in `CONSTS`.
#[macro_export]
#[doc(hidden)]
macro_rules! xen_consts {
    ($header:literal; $( $name:ident : $ty:ty = $val:expr, $c:literal; )*) => {
        $(
            #[doc = concat!("`", $c, "` (", $header, ").")]
            pub const $name: $ty = $val;
        )*
        /// This module's constants with their C names, for the conformance test.
        #[doc(hidden)]
        pub const CONSTS: &[$crate::registry::Const] = &[
            $( $crate::registry::Const { rust: stringify!($name), c: $c, value: $name as i128, header: $header }, )*
        ];
    };
}

/// Declares a `#[repr(C)]` wire struct with zerocopy derives, asserts its
/// size at compile time, and records its layout with the C names.
#[macro_export]
#[doc(hidden)]
macro_rules! xen_struct {
    // A C union, anonymous struct or guest handle stored as opaque words:
    // checked by offset and size only.
    (@signed $fty:ty, opaque) => { None };
    (@signed $fty:ty) => { <$fty as $crate::registry::FieldSign>::SIGNED };
    ($header:literal, $c:literal, $size:literal;
     $(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* $f:ident : $fty:ty = $cf:literal $($opaque:ident)?, )* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout, zerocopy::Immutable)]
        pub struct $name {
            $( $(#[$fm])* pub $f: $fty, )*
        }
        const _: () = assert!(core::mem::size_of::<$name>() == $size);
        impl $crate::registry::FieldSign for $name {}
        impl $crate::registry::Described for $name {
            const LAYOUT: $crate::registry::StructLayout = $crate::registry::StructLayout {
                rust: stringify!($name),
                c: $c,
                header: $header,
                size: core::mem::size_of::<$name>(),
                align: core::mem::align_of::<$name>(),
                fields: &[ $( $crate::registry::Field {
                    rust: stringify!($f),
                    c: $cf,
                    offset: core::mem::offset_of!($name, $f),
                    size: core::mem::size_of::<$fty>(),
                    signed: $crate::xen_struct!(@signed $fty $(, $opaque)?),
                    array: <$fty as $crate::registry::FieldSign>::ARRAY,
                }, )* ],
            };
        }
    };
}

/// Declares an enumeration of values that arrive from the other side,
/// parsed fallibly (`TryFrom`) from the registered constants.
#[macro_export]
#[doc(hidden)]
macro_rules! xen_enum {
    ($(#[$m:meta])* pub enum $name:ident : $repr:ty { $( $(#[$vm:meta])* $v:ident = $c:path, )* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[$vm])* $v, )* }
        impl $name {
            /// The value on the wire.
            pub const fn to_raw(self) -> $repr {
                match self { $( Self::$v => $c as $repr, )* }
            }
        }
        impl TryFrom<$repr> for $name {
            type Error = $crate::registry::UnknownValue;
            fn try_from(raw: $repr) -> Result<Self, Self::Error> {
                $( if raw == $c as $repr { return Ok(Self::$v); } )*
                Err($crate::registry::UnknownValue(raw as u64))
            }
        }
    };
}
