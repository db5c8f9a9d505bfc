//! The `httpd-conftest` command line (DESIGN.md): validate configurations the way
//! `apachectl configtest` does, for people and for CI.
//!
//! Exit status: 0 valid (warnings allowed), 1 errors (or warnings under `--strict`),
//! 2 usage error or unreadable file.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::{load, LoadOptions, Loaded};

/// Validate Apache-syntax configuration files for httpd, as `apachectl configtest` does.
///
/// Prints every problem as FILE:LINE:COL: error|warning: message, then `Syntax OK` when the
/// configuration is valid. Exit status: 0 valid (warnings allowed), 1 errors (or warnings
/// with --strict), 2 usage error or unreadable file.
#[derive(Parser, Debug)]
#[command(name = "httpd-conftest", version)]
pub struct Args {
    /// ServerRoot: relative paths (Include, DocumentRoot…) resolve against it.
    /// Default: the directory of each FILE.
    #[arg(short = 'd', value_name = "DIR")]
    pub server_root: Option<PathBuf>,

    /// Define NAME for <IfDefine NAME> (repeatable).
    #[arg(short = 'D', value_name = "NAME")]
    pub define: Vec<String>,

    /// Treat warnings as errors (exit 1).
    #[arg(long)]
    pub strict: bool,

    /// Diagnostics format: text on stderr, or one JSON array on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Print the resolved configuration (variables substituted, includes inlined, defaults
    /// filled, virtual hosts listed) as JSON on stdout.
    #[arg(long)]
    pub dump: bool,

    /// Configuration files to check. Default: ./httpd.conf
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Runs the validator; returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> u8 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    run(&args)
}

fn run(args: &Args) -> u8 {
    let files = if args.files.is_empty() {
        vec![PathBuf::from("httpd.conf")]
    } else {
        args.files.clone()
    };
    let opts = LoadOptions {
        server_root: args.server_root.clone(),
        defines: args.define.clone(),
        directives: Vec::new(),
        exit_after: true,
    };
    let mut loaded: Vec<Loaded> = Vec::new();
    let mut unreadable = false;
    for file in &files {
        match load(file, &opts) {
            Ok(l) => loaded.push(l),
            Err(e) => {
                eprintln!("httpd-conftest: error: {e}");
                if !file.exists() && args.files.is_empty() {
                    eprintln!("hint: give the configuration file as an argument: httpd-conftest /etc/httpd/httpd.conf");
                }
                unreadable = true;
            }
        }
    }
    let code = report(args, &loaded, unreadable);
    // Freeing a 100,000-line tree piece by piece is wasted work in a process that is
    // about to exit.
    std::mem::forget(loaded);
    code
}

/// Prints the verdict, diagnostics and dump; returns the exit status.
fn report(args: &Args, loaded: &[Loaded], unreadable: bool) -> u8 {
    let failed = loaded.iter().any(|l| l.fails(args.strict));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.dump {
        let configs: Vec<&crate::Config> = loaded.iter().map(|l| &l.config).collect();
        let doc = if configs.len() == 1 {
            serde_json::to_string_pretty(configs[0])
        } else {
            serde_json::to_string_pretty(&configs)
        };
        let _ = writeln!(out, "{}", doc.expect("the model serializes"));
    } else if args.format == Format::Json {
        let all: Vec<&crate::Diagnostic> = loaded.iter().flat_map(|l| &l.diagnostics).collect();
        let doc = serde_json::to_string_pretty(&all).expect("diagnostics serialize");
        let _ = writeln!(out, "{doc}");
    }
    if args.format == Format::Text || args.dump {
        for l in loaded {
            eprint!("{}", l.render());
        }
    }
    if unreadable {
        return 2;
    }
    if failed {
        let errors: usize = loaded
            .iter()
            .flat_map(|l| &l.diagnostics)
            .filter(|d| d.severity == crate::Severity::Error)
            .count();
        let warnings: usize = loaded.iter().map(|l| l.diagnostics.len()).sum::<usize>() - errors;
        if args.format == Format::Text {
            eprintln!(
                "httpd-conftest: {errors} error{}, {warnings} warning{}{}",
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" },
                if args.strict && errors == 0 {
                    " (--strict)"
                } else {
                    ""
                }
            );
        }
        return 1;
    }
    // stdout is data: with --dump or JSON, the verdict goes to stderr.
    if args.dump || args.format == Format::Json {
        eprintln!("Syntax OK");
    } else {
        let _ = writeln!(out, "Syntax OK");
    }
    0
}
