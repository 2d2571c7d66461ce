//! xl's commands (placeholder while the builder lands).

/// Runs xl with `args` (argv).
pub fn main(_args: &[String]) -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
