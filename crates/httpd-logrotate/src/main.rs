use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let code = if args.iter().skip(1).any(|a| a == "--stats") {
        httpd_logrotate::stats::main(args)
    } else {
        httpd_logrotate::rotate::main(args)
    };
    ExitCode::from(code)
}
