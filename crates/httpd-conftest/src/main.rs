use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(httpd_conftest::cli::main(std::env::args_os()))
}
