use clap::Parser;

/// httpd-dev (skeleton: the real command line arrives with its issue).
#[derive(Parser)]
#[command(version)]
struct Args {}

fn main() {
    let _args = Args::parse();
}
