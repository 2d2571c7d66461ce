//! Initramfs images for Linux guests: the `newc` cpio format the kernel
//! unpacks as its first root (directories, regular files, symlinks).

/// A `newc` cpio archive being built.
#[derive(Debug, Default)]
pub struct Cpio {
    out: Vec<u8>,
    next_ino: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl Cpio {
    /// An empty archive.
    pub fn new() -> Self {
        Cpio { out: Vec::new(), next_ino: 1 }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [ino, mode, 0, 0, nlink, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// A directory.
    pub fn dir(mut self, path: &str) -> Self {
        self.entry(path, S_IFDIR | 0o755, &[]);
        self
    }

    /// A regular file with permission bits `perm`.
    pub fn file(mut self, path: &str, perm: u32, data: &[u8]) -> Self {
        self.entry(path, S_IFREG | (perm & 0o7777), data);
        self
    }

    /// A symbolic link to `target`.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entry(path, S_IFLNK | 0o777, target.as_bytes());
        self
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_newc_with_padding() {
        let a = Cpio::new().dir("bin").file("init", 0o755, b"#!x").symlink("sh", "bin/busybox").finish();
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        // The first header: ino 1, a directory, name "bin" (4 with NUL).
        let header = std::str::from_utf8(&a[..110]).unwrap();
        assert_eq!(&header[6..14], "00000001");
        assert_eq!(&header[14..22], format!("{:08x}", S_IFDIR | 0o755));
        assert_eq!(&header[94..102], "00000004");
        assert_eq!(&a[110..114], b"bin\0");
        let init = a.windows(4).position(|w| w == b"init").unwrap();
        let data = init + 5 + (4 - (init + 5) % 4) % 4;
        assert_eq!(&a[data..data + 3], b"#!x", "data starts 4-aligned after the name");
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
