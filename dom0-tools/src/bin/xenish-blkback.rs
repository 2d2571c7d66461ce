//! `xenish-blkback`: the block backend daemon of the control domain (see
//! [`blkback`]).

#[path = "../blkback/mod.rs"]
pub mod blkback;

fn main() -> std::process::ExitCode {
    blkback::main()
}
