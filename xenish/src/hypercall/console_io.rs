//! `console_io`: write to and read from the hypervisor console.
//!
//! Who may: Xen 4.17's XSM dummy policy (`xsm_console_io` in
//! xen/include/xsm/dummy.h), checked before the command is looked at: the
//! control domain may do everything; any other domain gets `-EPERM`, for
//! every command, except that a build with `CONFIG_VERBOSE_DEBUG` (Xen's
//! debug builds) lets it write. xenish's `console_io=all` option is that
//! build choice; without it xenish answers as a release build of Xen.
//! (`is_console`, the other way in, is set only by Arm's dom0less.)
//!
//! How much: Xen's `guest_console_write` copies 127 bytes at a time and
//! checks for preemption between chunks. xenish's serial line is polled
//! with interrupts off, so it continues the call after every chunk: one
//! invocation writes at most [`CHUNK`] guest bytes (and the line they
//! complete) to the UART, whatever the count. A domain other than the
//! control domain is also held to its console rate
//! ([`crate::console_rate`]); what that drops is counted and reported.

use guest_abi::errno::XenError;
use guest_abi::xen::{CONSOLEIO_READ, CONSOLEIO_WRITE};

use super::{Ctx, Outcome};

/// Guest bytes copied and written per invocation before the call is
/// continued (Xen's `guest_console_write` chunk is 127 bytes).
pub const CHUNK: usize = 128;

/// Whether a domain may issue console command `cmd`: the control domain
/// always; another only to write, and only when `domu_writes` (Xen's
/// `xsm_console_io` under `CONFIG_VERBOSE_DEBUG`).
pub fn may_use(privileged: bool, cmd: u32, domu_writes: bool) -> bool {
    privileged || (domu_writes && cmd == CONSOLEIO_WRITE)
}

/// `HYPERVISOR_console_io(cmd, count, buffer)`.
pub fn console_io(ctx: &mut Ctx, args: [u64; 5]) -> Outcome {
    let [cmd, count, buffer, ..] = args;
    // Xen's arguments are `int cmd, unsigned int count`.
    let (cmd, count) = (cmd as u32, count as u32 as usize);
    if !may_use(ctx.is_privileged(), cmd, crate::console::domu_writes_allowed()) {
        return Outcome::Return(XenError::Eperm.to_ret());
    }
    match cmd {
        CONSOLEIO_WRITE => write(ctx, count, buffer, args),
        CONSOLEIO_READ => read(ctx, count, buffer).into(),
        _ => Outcome::Return(XenError::Enosys.to_ret()),
    }
}

fn write(ctx: &mut Ctx, count: usize, buffer: u64, args: [u64; 5]) -> Outcome {
    if count == 0 {
        return Outcome::Return(0);
    }
    let mut chunk = [0u8; CHUNK];
    let n = CHUNK.min(count);
    let Some(bytes) = chunk.get_mut(..n) else { return Outcome::Return(XenError::Efault.to_ret()) };
    if ctx.guest().copy_from(buffer, bytes).is_err() {
        return Outcome::Return(XenError::Efault.to_ret());
    }
    let platform = &mut *ctx.platform;
    ctx.domain.console.write(ctx.now_ns, bytes, &mut |b| platform.console_write(b));
    if n == count {
        return Outcome::Return(0);
    }
    // Xen's continuation: "iih", CONSOLEIO_write, the rest, the buffer
    // advanced past what was written.
    let mut next = args;
    next[1] = (count - n) as u64;
    next[2] = buffer.wrapping_add(n as u64);
    Outcome::Continue(next)
}

fn read(ctx: &mut Ctx, count: usize, buffer: u64) -> super::HcResult {
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
    use super::{may_use, CHUNK};
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
        let mut w = World::new(true);
        assert_eq!(w.call_ret(NR, [CONSOLEIO_WRITE as u64, 4, 0xffff_8000_0000_0000, 0, 0]), -14);
        assert_eq!(w.call_ret(NR, [CONSOLEIO_WRITE as u64, 4, 0x1000, 0, 0]), -14);
        // The count is an unsigned int: high bits are ignored, as in Xen.
        assert_eq!(w.call_ret(NR, [CONSOLEIO_WRITE as u64, 1 << 32, 0x1000, 0, 0]), 0);
    }

    #[test]
    fn a_write_is_continued_after_every_chunk_and_ends_as_one_uninterrupted() {
        let mut w = World::new(true);
        let text: std::vec::Vec<u8> =
            (0..16 * 1024).map(|i| if i % 80 == 79 { b'\n' } else { b'a' + (i % 26) as u8 }).collect();
        w.poke(BUF_VA, &text);
        let mut args = [CONSOLEIO_WRITE as u64, text.len() as u64 + 1, BUF_VA, 0, 0];
        // The last byte is unmapped: the final chunk faults, as in Xen.
        let mut rounds = 0;
        let last = loop {
            match w.call(NR, args) {
                Outcome::Continue(next) => {
                    assert_eq!(next[0], CONSOLEIO_WRITE as u64);
                    assert_eq!(args[1] - next[1], CHUNK as u64, "one chunk per invocation");
                    assert_eq!(next[2], args[2] + CHUNK as u64);
                    args = next;
                    rounds += 1;
                }
                Outcome::Return(r) => break r,
            }
        };
        assert_eq!((rounds, last), (16 * 1024 / CHUNK, -14));
        let mut want = std::vec::Vec::new();
        for line in text.split_inclusive(|&b| b == b'\n').filter(|l| l.ends_with(b"\n")) {
            want.extend_from_slice(b"(d0) ");
            want.extend_from_slice(line);
        }
        assert!(w.plat.out == want, "the same output as one uninterrupted write");
    }

    #[test]
    fn only_the_control_domain_may_use_the_console_in_a_release_build() {
        // Xen 4.17 xsm_console_io: XSM_PRIV unless CONFIG_VERBOSE_DEBUG
        // (writes only) or is_console; checked before the command.
        let mut w = World::new(false);
        w.poke(BUF_VA, b"hi\n");
        assert_eq!(w.call_ret(NR, [CONSOLEIO_WRITE as u64, 3, BUF_VA, 0, 0]), -1, "a domU's write: EPERM");
        assert_eq!(w.call_ret(NR, [CONSOLEIO_READ as u64, 4, BUF_VA, 0, 0]), -1);
        assert_eq!(w.call_ret(NR, [7, 0, 0, 0, 0]), -1, "even an unknown command");
        assert!(w.plat.out.is_empty());
        for (privileged, cmd, domu_writes, want) in [
            (true, CONSOLEIO_WRITE, false, true),
            (true, CONSOLEIO_READ, false, true),
            (true, 7, false, true),
            (false, CONSOLEIO_WRITE, false, false),
            (false, CONSOLEIO_WRITE, true, true),
            (false, CONSOLEIO_READ, true, false),
            (false, 7, true, false),
        ] {
            assert_eq!(may_use(privileged, cmd, domu_writes), want, "{privileged} {cmd} {domu_writes}");
        }
    }

    #[test]
    fn read_copies_input_and_unknown_commands_are_enosys() {
        let mut w = World::new(true);
        w.plat.input = b"abc".to_vec();
        assert_eq!(w.call_ret(NR, [CONSOLEIO_READ as u64, 8, BUF_VA, 0, 0]), 3);
        assert_eq!(w.peek(BUF_VA, 3), b"abc");
        assert_eq!(w.call_ret(NR, [7, 0, 0, 0, 0]), -38);
    }
}
