//! The COM1 UART (16550 at 0x3f8), 115200 8n1, polled.

use super::cpu::{inb, outb};

const COM1: u16 = 0x3f8;

/// Programs COM1 for 115200 baud, 8 data bits, no parity, 1 stop bit.
pub fn init() {
    outb(COM1 + 1, 0x00); // no interrupts
    outb(COM1 + 3, 0x80); // DLAB
    outb(COM1, 0x01); // divisor 1: 115200 baud
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); // 8n1
    outb(COM1 + 2, 0xc7); // FIFO on, cleared, 14-byte threshold
    outb(COM1 + 4, 0x03); // DTR | RTS
}

/// Sends one byte, waiting for room in the transmitter.
pub fn write_byte(b: u8) {
    let mut spins = 0u32;
    while inb(COM1 + 5) & 0x20 == 0 && spins < 1_000_000 {
        spins += 1;
        core::hint::spin_loop();
    }
    outb(COM1, b);
}

/// Returns a received byte, if one is waiting.
pub fn read_byte() -> Option<u8> {
    (inb(COM1 + 5) & 0x01 != 0).then(|| inb(COM1))
}

/// Whether a received byte is waiting (the line status register's data
/// ready bit), without taking it.
pub fn input_ready() -> bool {
    inb(COM1 + 5) & 0x01 != 0
}
