//! `-f httpd.conf`: listeners and certificates from `<VirtualHost>` sections.

use crate::cli::Args;
use crate::config::Config;
use crate::error::{Error, Result};

/// Builds the config from an Apache-style file plus the command line.
pub fn config_from_file(args: &Args) -> Result<Config> {
    let _ = args;
    Err(Error::Config("-f is not supported yet".into()))
}
