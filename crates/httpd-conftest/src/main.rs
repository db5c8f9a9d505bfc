use std::process::ExitCode;

// A configuration is a large tree of small strings; mimalloc makes building it markedly
// cheaper than glibc's allocator (bench/conftest.sh).
#[global_allocator]
static GLOBAL: httpd_alloc::MiMalloc = httpd_alloc::MiMalloc;

fn main() -> ExitCode {
    ExitCode::from(httpd_conftest::cli::main(std::env::args_os()))
}
