//! `console_io`: write to and read from the hypervisor console.
//!
//! Xen allows this only to the console domain; xenish lets every domain
//! write (prefixed `(dN) `, as Xen's guest console lines are) so early boot
//! output of any guest is visible, and keeps reading privileged.

use guest_abi::errno::XenError;
use guest_abi::xen::{CONSOLEIO_READ, CONSOLEIO_WRITE};

use super::{Ctx, Outcome};

/// Bytes written per invocation before the call is preempted and continued.
const WRITE_BUDGET: usize = 16 * 1024;
/// Copy granularity (Xen's `guest_console_write` chunk).
const CHUNK: usize = 128;

/// `HYPERVISOR_console_io(cmd, count, buffer)`.
pub fn console_io(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, count, buffer, ..] = args;
    // Xen's arguments are `int cmd, unsigned int count`.
    let count = count as u32 as usize;
    match cmd as u32 {
        CONSOLEIO_WRITE => write(ctx, count, buffer, args),
        CONSOLEIO_READ => read(ctx, count, buffer).into(),
        _ => Outcome::Return(XenError::Enosys.to_ret()),
    }
}

fn write(ctx: &mut Ctx, count: usize, buffer: u64, args: [u64; 5]) -> Outcome {
    let mut done = 0;
    let mut chunk = [0u8; CHUNK];
    while done < count {
        if done >= WRITE_BUDGET {
            let mut next = args;
            next[1] = (count - done) as u64;
            next[2] = buffer.wrapping_add(done as u64);
            return Outcome::Continue(next);
        }
        let n = CHUNK.min(count - done);
        let va = buffer.wrapping_add(done as u64);
        if ctx.guest().copy_from(va, &mut chunk[..n]).is_err() {
            return Outcome::Return(XenError::Efault.to_ret());
        }
        let platform = &mut *ctx.platform;
        ctx.domain.console.write(&chunk[..n], &mut |b| platform.console_write(b));
        done += n;
    }
    Outcome::Return(0)
}

fn read(ctx: &mut Ctx, count: usize, buffer: u64) -> super::HcResult {
    if !ctx.domain.privileged {
        return Err(XenError::Eperm);
    }
    let mut total = 0;
    let mut chunk = [0u8; CHUNK];
    while total < count {
        let n = ctx.platform.console_read(&mut chunk[..CHUNK.min(count - total)]);
        if n == 0 {
            break;
        }
        ctx.guest().copy_to(buffer.wrapping_add(total as u64), &chunk[..n]).map_err(|_| XenError::Efault)?;
        total += n;
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, BUF_VA};
    use super::super::Outcome;
    use guest_abi::xen::{CONSOLEIO_READ, CONSOLEIO_WRITE, HYPERVISOR_CONSOLE_IO};

    const NR: u64 = HYPERVISOR_CONSOLE_IO as u64;

    #[test]
    fn write_prefixes_guest_output() {
        let mut w = World::new(true);
        w.poke(BUF_VA, b"hi\nthere\n");
        assert_eq!(w.call_ret(NR, [CONSOLEIO_WRITE as u64, 9, BUF_VA, 0, 0]), 0);
        assert_eq!(w.plat.out, b"(d0) hi\n(d0) there\n");
    }

    #[test]
    fn write_faults_on_bad_buffer() {
        let mut w = World::new(false);
        assert_eq!(w.call_ret(NR, [CONSOLEIO_WRITE as u64, 4, 0xffff_8000_0000_0000, 0, 0]), -14);
        assert_eq!(w.call_ret(NR, [CONSOLEIO_WRITE as u64, 4, 0x1000, 0, 0]), -14);
        // The count is an unsigned int: high bits are ignored, as in Xen.
        assert_eq!(w.call_ret(NR, [CONSOLEIO_WRITE as u64, 1 << 32, 0x1000, 0, 0]), 0);
    }

    #[test]
    fn long_writes_are_continued() {
        let mut w = World::new(true);
        // 4 mapped pages hold 16 KiB; ask for 16 KiB + 1 (last byte unmapped).
        let out = w.call(NR, [CONSOLEIO_WRITE as u64, 16 * 1024 + 1, BUF_VA, 0, 0]);
        assert_eq!(out, Outcome::Continue([CONSOLEIO_WRITE as u64, 1, BUF_VA + 16 * 1024, 0, 0]));
    }

    #[test]
    fn read_is_privileged_and_copies_input() {
        let mut w = World::new(false);
        assert_eq!(w.call_ret(NR, [CONSOLEIO_READ as u64, 4, BUF_VA, 0, 0]), -1);
        let mut w = World::new(true);
        w.plat.input = b"abc".to_vec();
        assert_eq!(w.call_ret(NR, [CONSOLEIO_READ as u64, 8, BUF_VA, 0, 0]), 3);
        assert_eq!(w.peek(BUF_VA, 3), b"abc");
        assert_eq!(w.call_ret(NR, [7, 0, 0, 0, 0]), -38);
    }
}
