// A handshake allocates many short-lived buffers (rustls messages, tokio tasks):
// mimalloc's thread-local free lists are cheaper than glibc's malloc, as in httpd-core.
#[global_allocator]
static GLOBAL: httpd_alloc::MiMalloc = httpd_alloc::MiMalloc;

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
