use clap::Parser;

fn main() {
    if httpd_dev::guard::invoked() {
        httpd_dev::guard::serve();
    }
    let args = httpd_dev::Args::parse();
    if let Err(e) = httpd_dev::run(args) {
        eprintln!("httpd-dev: error: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            eprintln!("caused by: {s}");
            src = s.source();
        }
        if let Some(h) = e.hint() {
            eprintln!("hint: {h}");
        }
        std::process::exit(e.exit_code());
    }
}
