//! `xenish-netback`: the network backend daemon of the control domain
//! (see [`netback`]).

#[path = "../netback/mod.rs"]
pub mod netback;

fn main() -> std::process::ExitCode {
    netback::main()
}
