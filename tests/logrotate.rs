//! Black-box tests of httpd-logrotate (rotation).

use httpd_blackbox::*;
