fn main() -> std::process::ExitCode {
    httpd_core::cli::main()
}
