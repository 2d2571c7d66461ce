//! A stand-in multiboot2 kernel, made byte by byte, for testing the harness
//! itself without the hypervisor: it writes a text to COM1, optionally
//! writes a value to the `isa-debug-exit` port, and halts forever.

use std::path::Path;

/// Multiboot2 header magic.
const MAGIC: u32 = 0xe852_50d6;
/// Where GRUB is asked to load the image (1 MiB) and so where it runs.
const LOAD_ADDR: u32 = 0x10_0000;
/// Header (16) + address tag (24) + entry tag (12, padded to 16) + end tag (8).
const HEADER_LEN: u32 = 64;

/// A stand-in kernel to boot instead of xenish.
#[derive(Clone, Debug, Default)]
pub struct Stub {
    serial: String,
    debug_exit: Option<u8>,
}

impl Stub {
    /// A kernel that writes `text` to COM1 (port 0x3f8) and halts.
    pub fn printing(text: &str) -> Self {
        Stub { serial: text.into(), debug_exit: None }
    }

    /// Then writes `value` to the debug-exit port (0xf4) instead of halting.
    pub fn debug_exit(mut self, value: u8) -> Self {
        self.debug_exit = Some(value);
        self
    }

    /// The image: a flat multiboot2 binary (address and entry tags, no ELF)
    /// whose 32-bit code follows the header.
    pub fn image(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let word = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
        let half = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_le_bytes());
        word(&mut out, MAGIC);
        word(&mut out, 0); // i386 protected mode
        word(&mut out, HEADER_LEN);
        word(&mut out, 0u32.wrapping_sub(MAGIC).wrapping_sub(HEADER_LEN));
        // Address tag: the file is loaded whole at LOAD_ADDR.
        half(&mut out, 2);
        half(&mut out, 0);
        word(&mut out, 24);
        word(&mut out, LOAD_ADDR); // header_addr
        word(&mut out, LOAD_ADDR); // load_addr
        word(&mut out, 0); // load_end_addr: the whole file
        word(&mut out, 0); // bss_end_addr: none
                           // Entry address tag, padded to 8 bytes.
        half(&mut out, 3);
        half(&mut out, 0);
        word(&mut out, 12);
        word(&mut out, LOAD_ADDR + HEADER_LEN);
        word(&mut out, 0);
        // End tag.
        half(&mut out, 0);
        half(&mut out, 0);
        word(&mut out, 8);
        debug_assert_eq!(out.len(), HEADER_LEN as usize);
        // mov $0x3f8, %dx; then per byte: mov $c, %al; out %al, %dx.
        out.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03]);
        for b in self.serial.bytes() {
            out.extend_from_slice(&[0xb0, b, 0xee]);
        }
        if let Some(v) = self.debug_exit {
            // mov $v, %al; out %al, $0xf4
            out.extend_from_slice(&[0xb0, v, 0xe6, 0xf4]);
        }
        // cli; 1: hlt; jmp 1b
        out.extend_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]);
        out
    }

    /// Writes the image to `path`.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.image()).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sums_to_zero_and_code_follows_it() {
        let image = Stub::printing("hi").debug_exit(1).image();
        let word = |i: usize| u32::from_le_bytes(image[i..i + 4].try_into().unwrap());
        assert_eq!(word(0), MAGIC);
        assert_eq!(word(0).wrapping_add(word(4)).wrapping_add(word(8)).wrapping_add(word(12)), 0);
        assert_eq!(word(48), LOAD_ADDR + HEADER_LEN, "entry address");
        assert_eq!(&image[64..68], &[0x66, 0xba, 0xf8, 0x03]);
        assert_eq!(&image[68..74], &[0xb0, b'h', 0xee, 0xb0, b'i', 0xee]);
        assert!(image.ends_with(&[0xb0, 1, 0xe6, 0xf4, 0xfa, 0xf4, 0xeb, 0xfd]));
    }
}
