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
    /// The C name (a macro or enumerator in `header`), or a C expression.
    pub c: &'static str,
    /// The value.
    pub value: i128,
    /// The public header defining it (under `xen/`).
    pub header: &'static str,
    /// For a table entry: its index, which replaces `#` in `c`.
    pub index: Option<usize>,
}

/// A string constant, or one entry of a table of them, and its C spelling.
#[derive(Clone, Copy, Debug)]
pub struct StrConst {
    /// The Rust name (with `[i]` for a table entry).
    pub rust: &'static str,
    /// A C expression of type `const char *`.
    pub c: &'static str,
    /// The value.
    pub value: &'static str,
    /// The public header defining it.
    pub header: &'static str,
    /// For a table entry: its index, which replaces `#` in `c`.
    pub index: Option<usize>,
}

/// The entries of a string table: `c` indexes the C array with `#`.
pub const fn str_entries<const N: usize>(
    rust: &'static str,
    c: &'static str,
    header: &'static str,
    values: [&'static str; N],
) -> [StrConst; N] {
    let mut out = [StrConst { rust, c, value: "", header, index: None }; N];
    let mut i = 0;
    while i < N {
        out[i].value = values[i];
        out[i].index = Some(i);
        i += 1;
    }
    out
}

/// The entries of an integer table: `c` indexes the C array with `#`.
pub const fn int_entries<const N: usize>(
    rust: &'static str,
    c: &'static str,
    header: &'static str,
    values: [i128; N],
) -> [Const; N] {
    let mut out = [Const { rust, c, value: 0, header, index: None }; N];
    let mut i = 0;
    while i < N {
        out[i].value = values[i];
        out[i].index = Some(i);
        i += 1;
    }
    out
}

/// A table the crate mirrors from a C array: its length is checked, and
/// each entry is a [`StrConst`] or [`Const`] with a C expression
/// indexing the array.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    /// The Rust name.
    pub rust: &'static str,
    /// A C expression for the number of entries.
    pub c_len: &'static str,
    /// The number of entries in Rust.
    pub len: usize,
    /// The public header defining it.
    pub header: &'static str,
}

/// How the probe checks a field's type beyond offset and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldCheck {
    /// An integer, struct, or array of them: signedness, element size and
    /// struct type are compared with C's.
    Typed,
    /// A C union kept as bytes of its widest member (accessors give the
    /// members, each checked as a view struct): offset and size only.
    Union,
    /// A C `char` array (string): the element type must be `char`.
    Chars,
    /// A `XEN_GUEST_HANDLE(T)`: the C field must be a guest handle whose
    /// pointee has the Rust handle's element size.
    Handle,
}

/// A struct field: Rust and C names, offset, size and type.
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
    /// How the type is checked.
    pub check: FieldCheck,
    /// For an integer field (or array of integers): whether it is signed.
    pub signed: Option<bool>,
    /// Whether the field is an array.
    pub array: bool,
    /// For an array: the size of one element; for a guest handle: the size
    /// of what it points to.
    pub elem_size: usize,
    /// For a struct field (or array of structs): the C type.
    pub c_type: Option<&'static str>,
    /// For a union: C paths of members (`"console.domU"`) that must start
    /// at the field's offset and fit in its size.
    pub members: &'static [&'static str],
}

/// What the probe needs to know about a Rust field type.
pub trait WireType {
    /// `Some(signed)` for integers and arrays of integers.
    const SIGNED: Option<bool> = None;
    /// Whether the type is an array.
    const ARRAY: bool = false;
    /// For an array, the size of one element; for a guest handle, the size
    /// of the pointee.
    const ELEM_SIZE: usize = 0;
    /// For a mirrored struct (or array of them), its C type.
    const C_TYPE: Option<&'static str> = None;
}

macro_rules! wire_int {
    ($($t:ty => $s:expr),*) => { $( impl WireType for $t { const SIGNED: Option<bool> = Some($s); } )* };
}
wire_int!(u8 => false, u16 => false, u32 => false, u64 => false, i8 => true, i16 => true, i32 => true, i64 => true);

impl<T: WireType, const N: usize> WireType for [T; N] {
    // Only one level: arrays of arrays are checked by size alone.
    const SIGNED: Option<bool> = if T::ARRAY { None } else { T::SIGNED };
    const ARRAY: bool = true;
    const ELEM_SIZE: usize = core::mem::size_of::<T>();
    const C_TYPE: Option<&'static str> = if T::ARRAY { None } else { T::C_TYPE };
}

/// A struct's layout.
#[derive(Clone, Copy, Debug)]
pub struct StructLayout {
    /// The Rust type name.
    pub rust: &'static str,
    /// The C type (`struct name`, or a `__typeof__` of a union member).
    pub c: &'static str,
    /// The public header defining it.
    pub header: &'static str,
    /// For a struct that mirrors only the head of a C struct (up to a
    /// flexible or generic tail): the C member where the Rust struct ends.
    pub tail: Option<&'static str>,
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
    let lists: [&'static [Const]; 25] = [
        crate::xen::CONSTS,
        crate::domctl::CONSTS,
        crate::sysctl::CONSTS,
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
        crate::platform::CONSTS,
        crate::xen_mca::CONSTS,
        crate::memory::tools::CONSTS,
        crate::version::CONSTS,
        crate::features::CONSTS,
        crate::io::blkif::CONSTS,
        crate::io::netif::CONSTS,
        crate::io::console::CONSTS,
        crate::io::xs_wire::CONSTS,
        crate::io::xenbus::CONSTS,
        crate::io::ring::CONSTS,
        crate::io::xs_wire::TABLE_CONSTS,
    ];
    lists.into_iter().flatten()
}

/// All string constants and string table entries of the crate.
pub fn strs() -> impl Iterator<Item = &'static StrConst> {
    let lists: [&'static [StrConst]; 3] =
        [crate::io::xs_wire::STR_CONSTS, crate::io::xs_wire::TABLE_STRS, crate::grant_table::TABLE_STRS];
    lists.into_iter().flatten()
}

/// All tables of the crate (their entries are in [`strs`] and [`consts`]).
pub fn tables() -> impl Iterator<Item = &'static Table> {
    let lists: [&'static [Table]; 2] = [crate::io::xs_wire::TABLES, crate::grant_table::TABLES];
    lists.into_iter().flatten()
}

/// All structs of the crate.
pub fn structs() -> impl Iterator<Item = &'static StructLayout> {
    let lists: [&'static [StructLayout]; 19] = [
        crate::xen::STRUCTS,
        crate::domctl::STRUCTS,
        crate::sysctl::STRUCTS,
        crate::arch_x86::STRUCTS,
        crate::event_channel::STRUCTS,
        crate::grant_table::STRUCTS,
        crate::memory::STRUCTS,
        crate::sched::STRUCTS,
        crate::vcpu::STRUCTS,
        crate::callback::STRUCTS,
        crate::physdev::STRUCTS,
        crate::platform::STRUCTS,
        crate::xen_mca::STRUCTS,
        crate::version::STRUCTS,
        crate::io::ring::STRUCTS,
        crate::io::blkif::STRUCTS,
        crate::io::netif::STRUCTS,
        crate::io::console::STRUCTS,
        crate::io::xs_wire::STRUCTS,
    ];
    lists.into_iter().flatten()
}

/// Declares string constants with their C names, and registers them in
/// `STR_CONSTS`.
#[macro_export]
#[doc(hidden)]
macro_rules! xen_strs {
    ($header:literal; $( $name:ident = $val:literal, $c:literal; )*) => {
        $(
            #[doc = concat!("`", $c, "` (", $header, "): `", $val, "`.")]
            pub const $name: &str = $val;
        )*
        /// This module's string constants with their C names, for the conformance test.
        #[doc(hidden)]
        pub const STR_CONSTS: &[$crate::registry::StrConst] = &[
            $( $crate::registry::StrConst { rust: stringify!($name), c: $c, value: $name, header: $header, index: None }, )*
        ];
    };
}

/// Declares constants with their C names, and registers them in `CONSTS`.
#[macro_export]
#[doc(hidden)]
macro_rules! xen_consts {
    ($header:literal; $( $(#[$m:meta])* $name:ident : $ty:ty = $val:expr, $c:literal; )*) => {
        $(
            #[doc = concat!("`", $c, "` (", $header, ").")]
            $(#[$m])*
            pub const $name: $ty = $val;
        )*
        /// This module's constants with their C names, for the conformance test.
        #[doc(hidden)]
        pub const CONSTS: &[$crate::registry::Const] = &[
            $( $crate::registry::Const { rust: stringify!($name), c: $c, value: $name as i128, header: $header, index: None }, )*
        ];
    };
}

/// Declares a `#[repr(C)]` wire struct with zerocopy derives, asserts its
/// size at compile time, and records its layout with the C names.
///
/// A field is `name: Type = "c_name"`, optionally followed by
/// `union("c_name.member", ...)`, `chars` or `handle` (see
/// [`FieldCheck`](crate::registry::FieldCheck));
/// `= ""` marks padding C leaves implicit. `"struct c" until "member"`
/// mirrors the head of a C struct up to `member`.
#[macro_export]
#[doc(hidden)]
macro_rules! xen_struct {
    (@check) => { $crate::registry::FieldCheck::Typed };
    (@check union) => { $crate::registry::FieldCheck::Union };
    (@check chars) => { $crate::registry::FieldCheck::Chars };
    (@check handle) => { $crate::registry::FieldCheck::Handle };
    (@typed $fty:ty, $v:expr, $default:expr) => { $v };
    (@typed $fty:ty, $v:expr, $default:expr, $kind:ident) => { $default };
    (@tail) => { None };
    (@tail $tail:literal) => { Some($tail) };
    ($header:literal, $c:literal $(until $tail:literal)?, $size:literal;
     $(#[$m:meta])* pub struct $name:ident {
         $( $(#[$fm:meta])* $f:ident : $fty:ty = $cf:literal $($kind:ident $(($($member:literal),*))?)?, )*
     }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout, zerocopy::Immutable)]
        pub struct $name {
            $( $(#[$fm])* pub $f: $fty, )*
        }
        const _: () = assert!(core::mem::size_of::<$name>() == $size);
        impl $crate::registry::WireType for $name {
            const C_TYPE: Option<&'static str> = Some($c);
        }
        impl $crate::registry::Described for $name {
            const LAYOUT: $crate::registry::StructLayout = $crate::registry::StructLayout {
                rust: stringify!($name),
                c: $c,
                header: $header,
                tail: $crate::xen_struct!(@tail $($tail)?),
                size: core::mem::size_of::<$name>(),
                align: core::mem::align_of::<$name>(),
                fields: &[ $( $crate::registry::Field {
                    rust: stringify!($f),
                    c: $cf,
                    offset: core::mem::offset_of!($name, $f),
                    size: core::mem::size_of::<$fty>(),
                    check: $crate::xen_struct!(@check $($kind)?),
                    signed: $crate::xen_struct!(@typed $fty, <$fty as $crate::registry::WireType>::SIGNED, None $(, $kind)?),
                    array: <$fty as $crate::registry::WireType>::ARRAY,
                    elem_size: <$fty as $crate::registry::WireType>::ELEM_SIZE,
                    c_type: $crate::xen_struct!(@typed $fty, <$fty as $crate::registry::WireType>::C_TYPE, None $(, $kind)?),
                    members: &[ $($($($member,)*)?)? ],
                }, )* ],
            };
        }
    };
}

/// The `STRUCTS` list of a module: the layouts of the named structs.
#[macro_export]
#[doc(hidden)]
macro_rules! xen_structs {
    ($($name:ident),* $(,)?) => {
        /// Every struct of this module, for the conformance test.
        #[doc(hidden)]
        pub const STRUCTS: &[$crate::registry::StructLayout] =
            &[ $( <$name as $crate::registry::Described>::LAYOUT, )* ];
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
            fn try_from(raw: $repr) -> Result<Self, $crate::registry::UnknownValue> {
                $( if raw == $c as $repr { return Ok(Self::$v); } )*
                Err($crate::registry::UnknownValue(raw as u64))
            }
        }
    };
}
