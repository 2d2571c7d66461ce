//! `xenconsoled`: the console daemon of the control domain (see
//! [`xenconsoled`]).

#[path = "../xenconsoled/mod.rs"]
pub mod xenconsoled;

fn main() -> std::process::ExitCode {
    xenconsoled::main()
}
