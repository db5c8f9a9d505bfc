//! The progress bar on stderr for long runs on a terminal: bytes read of the total.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Draws every 200 ms until dropped, then clears its line.
pub struct Bar {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Bar {
    pub fn start(read: Arc<AtomicU64>, total: u64) -> Bar {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut drawn = false;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                // Short runs finish before the bar would be worth drawing.
                if started.elapsed() < Duration::from_secs(1) || total == 0 {
                    continue;
                }
                let done = read.load(Ordering::Relaxed).min(total);
                let frac = done as f64 / total as f64;
                let width = 40;
                let filled = (frac * width as f64) as usize;
                let rate = done as f64 / started.elapsed().as_secs_f64() / 1048576.0;
                eprint!(
                    "\r[{}{}] {:5.1}% {:.0} MiB/s ",
                    "=".repeat(filled),
                    " ".repeat(width - filled),
                    frac * 100.0,
                    rate
                );
                let _ = std::io::stderr().flush();
                drawn = true;
            }
            if drawn {
                eprint!("\r{}\r", " ".repeat(64));
            }
        });
        Bar {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
