//! Xen's error numbers (`errno.h`): the values hypercalls return negated,
//! as constants and as the typed [`XenError`].

xen_consts! {
    "errno.h";
    EPERM: i32 = 1, "XEN_EPERM";
    ENOENT: i32 = 2, "XEN_ENOENT";
    ESRCH: i32 = 3, "XEN_ESRCH";
    EIO: i32 = 5, "XEN_EIO";
    ENXIO: i32 = 6, "XEN_ENXIO";
    E2BIG: i32 = 7, "XEN_E2BIG";
    ENOEXEC: i32 = 8, "XEN_ENOEXEC";
    EBADF: i32 = 9, "XEN_EBADF";
    ECHILD: i32 = 10, "XEN_ECHILD";
    EAGAIN: i32 = 11, "XEN_EAGAIN";
    EWOULDBLOCK: i32 = 11, "XEN_EWOULDBLOCK";
    ENOMEM: i32 = 12, "XEN_ENOMEM";
    EACCES: i32 = 13, "XEN_EACCES";
    EFAULT: i32 = 14, "XEN_EFAULT";
    EBUSY: i32 = 16, "XEN_EBUSY";
    EEXIST: i32 = 17, "XEN_EEXIST";
    EXDEV: i32 = 18, "XEN_EXDEV";
    ENODEV: i32 = 19, "XEN_ENODEV";
    ENOTDIR: i32 = 20, "XEN_ENOTDIR";
    EISDIR: i32 = 21, "XEN_EISDIR";
    EINVAL: i32 = 22, "XEN_EINVAL";
    ENFILE: i32 = 23, "XEN_ENFILE";
    EMFILE: i32 = 24, "XEN_EMFILE";
    ENOSPC: i32 = 28, "XEN_ENOSPC";
    EROFS: i32 = 30, "XEN_EROFS";
    EMLINK: i32 = 31, "XEN_EMLINK";
    EDOM: i32 = 33, "XEN_EDOM";
    ERANGE: i32 = 34, "XEN_ERANGE";
    EDEADLK: i32 = 35, "XEN_EDEADLK";
    EDEADLOCK: i32 = 35, "XEN_EDEADLOCK";
    ENAMETOOLONG: i32 = 36, "XEN_ENAMETOOLONG";
    ENOLCK: i32 = 37, "XEN_ENOLCK";
    ENOSYS: i32 = 38, "XEN_ENOSYS";
    ENOTEMPTY: i32 = 39, "XEN_ENOTEMPTY";
    ENODATA: i32 = 61, "XEN_ENODATA";
    ETIME: i32 = 62, "XEN_ETIME";
    EBADMSG: i32 = 74, "XEN_EBADMSG";
    EOVERFLOW: i32 = 75, "XEN_EOVERFLOW";
    EILSEQ: i32 = 84, "XEN_EILSEQ";
    ENOTSOCK: i32 = 88, "XEN_ENOTSOCK";
    EMSGSIZE: i32 = 90, "XEN_EMSGSIZE";
    EOPNOTSUPP: i32 = 95, "XEN_EOPNOTSUPP";
    EADDRINUSE: i32 = 98, "XEN_EADDRINUSE";
    EADDRNOTAVAIL: i32 = 99, "XEN_EADDRNOTAVAIL";
    ENOBUFS: i32 = 105, "XEN_ENOBUFS";
    EISCONN: i32 = 106, "XEN_EISCONN";
    ENOTCONN: i32 = 107, "XEN_ENOTCONN";
    ETIMEDOUT: i32 = 110, "XEN_ETIMEDOUT";
    ECONNREFUSED: i32 = 111, "XEN_ECONNREFUSED";
}

/// A Xen error number; hypercalls return it negated in `rax`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum XenError {
    /// Operation not permitted (EPERM)
    Eperm = 1,
    /// No such file or directory (ENOENT)
    Enoent = 2,
    /// No such process (ESRCH)
    Esrch = 3,
    /// I/O error (EIO)
    Eio = 5,
    /// No such device or address (ENXIO)
    Enxio = 6,
    /// Arg list too long (E2BIG)
    E2big = 7,
    /// Exec format error (ENOEXEC)
    Enoexec = 8,
    /// Bad file number (EBADF)
    Ebadf = 9,
    /// No child processes (ECHILD)
    Echild = 10,
    /// Try again (EAGAIN)
    Eagain = 11,
    /// Out of memory (ENOMEM)
    Enomem = 12,
    /// Permission denied (EACCES)
    Eacces = 13,
    /// Bad address (EFAULT)
    Efault = 14,
    /// Device or resource busy (EBUSY)
    Ebusy = 16,
    /// File exists (EEXIST)
    Eexist = 17,
    /// Cross-device link (EXDEV)
    Exdev = 18,
    /// No such device (ENODEV)
    Enodev = 19,
    /// Not a directory (ENOTDIR)
    Enotdir = 20,
    /// Is a directory (EISDIR)
    Eisdir = 21,
    /// Invalid argument (EINVAL)
    Einval = 22,
    /// File table overflow (ENFILE)
    Enfile = 23,
    /// Too many open files (EMFILE)
    Emfile = 24,
    /// No space left on device (ENOSPC)
    Enospc = 28,
    /// Read-only file system (EROFS)
    Erofs = 30,
    /// Too many links (EMLINK)
    Emlink = 31,
    /// Math argument out of domain of func (EDOM)
    Edom = 33,
    /// Math result not representable (ERANGE)
    Erange = 34,
    /// Resource deadlock would occur (EDEADLK)
    Edeadlk = 35,
    /// File name too long (ENAMETOOLONG)
    Enametoolong = 36,
    /// No record locks available (ENOLCK)
    Enolck = 37,
    /// Function not implemented (ENOSYS)
    Enosys = 38,
    /// Directory not empty (ENOTEMPTY)
    Enotempty = 39,
    /// No data available (ENODATA)
    Enodata = 61,
    /// Timer expired (ETIME)
    Etime = 62,
    /// Not a data message (EBADMSG)
    Ebadmsg = 74,
    /// Value too large for defined data type (EOVERFLOW)
    Eoverflow = 75,
    /// Illegal byte sequence (EILSEQ)
    Eilseq = 84,
    /// Interrupted system call should be restarted (ERESTART): Xen's
    /// internal "preempted, continue", never returned to a guest.
    Erestart = 85,
    /// Socket operation on non-socket (ENOTSOCK)
    Enotsock = 88,
    /// Message too large. (EMSGSIZE)
    Emsgsize = 90,
    /// Operation not supported on transport endpoint (EOPNOTSUPP)
    Eopnotsupp = 95,
    /// Address already in use (EADDRINUSE)
    Eaddrinuse = 98,
    /// Cannot assign requested address (EADDRNOTAVAIL)
    Eaddrnotavail = 99,
    /// No buffer space available (ENOBUFS)
    Enobufs = 105,
    /// Transport endpoint is already connected (EISCONN)
    Eisconn = 106,
    /// Transport endpoint is not connected (ENOTCONN)
    Enotconn = 107,
    /// Connection timed out (ETIMEDOUT)
    Etimedout = 110,
    /// Connection refused (ECONNREFUSED)
    Econnrefused = 111,
}

impl XenError {
    /// The value a hypercall returns for this error (`-errno`).
    pub const fn to_ret(self) -> i64 {
        -(self as i32 as i64)
    }

    /// The positive error number.
    pub const fn errno(self) -> i32 {
        self as i32
    }

    /// The error for a positive error number, if Xen defines it.
    pub const fn from_errno(errno: i32) -> Option<Self> {
        Some(match errno {
            1 => Self::Eperm,
            2 => Self::Enoent,
            3 => Self::Esrch,
            5 => Self::Eio,
            6 => Self::Enxio,
            7 => Self::E2big,
            8 => Self::Enoexec,
            9 => Self::Ebadf,
            10 => Self::Echild,
            11 => Self::Eagain,
            12 => Self::Enomem,
            13 => Self::Eacces,
            14 => Self::Efault,
            16 => Self::Ebusy,
            17 => Self::Eexist,
            18 => Self::Exdev,
            19 => Self::Enodev,
            20 => Self::Enotdir,
            21 => Self::Eisdir,
            22 => Self::Einval,
            23 => Self::Enfile,
            24 => Self::Emfile,
            28 => Self::Enospc,
            30 => Self::Erofs,
            31 => Self::Emlink,
            33 => Self::Edom,
            34 => Self::Erange,
            35 => Self::Edeadlk,
            36 => Self::Enametoolong,
            37 => Self::Enolck,
            38 => Self::Enosys,
            39 => Self::Enotempty,
            61 => Self::Enodata,
            62 => Self::Etime,
            74 => Self::Ebadmsg,
            75 => Self::Eoverflow,
            84 => Self::Eilseq,
            85 => Self::Erestart,
            88 => Self::Enotsock,
            90 => Self::Emsgsize,
            95 => Self::Eopnotsupp,
            98 => Self::Eaddrinuse,
            99 => Self::Eaddrnotavail,
            105 => Self::Enobufs,
            106 => Self::Eisconn,
            107 => Self::Enotconn,
            110 => Self::Etimedout,
            111 => Self::Econnrefused,
            _ => return None,
        })
    }

    /// Splits a hypercall return value: non-negative is success, negative an
    /// error; a negative value Xen does not define reads as `EINVAL`.
    pub const fn from_ret(ret: i64) -> Result<u64, Self> {
        if ret >= 0 {
            return Ok(ret as u64);
        }
        match Self::from_errno(ret.unsigned_abs() as i32) {
            Some(e) => Err(e),
            None => Err(Self::Einval),
        }
    }
}

impl core::fmt::Display for XenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?} ({})", self, self.errno())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(XenError::Enosys.to_ret(), -38);
        assert_eq!(XenError::from_ret(-14), Err(XenError::Efault));
        assert_eq!(XenError::from_ret(7), Ok(7));
        assert_eq!(XenError::from_ret(-9999), Err(XenError::Einval));
        assert_eq!(XenError::from_errno(EPERM), Some(XenError::Eperm));
    }
}
