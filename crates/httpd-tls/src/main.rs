use std::process::ExitCode;

fn main() -> ExitCode {
    let args = httpd_tls::Args::parse_args();
    match httpd_tls::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.report();
            ExitCode::from(e.exit_code())
        }
    }
}
