//! The global allocator of httpd's binaries: mimalloc, asked the way Rust's own `System`
//! allocator asks malloc.
//!
//! Each binary declares it once:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: httpd_alloc::MiMalloc = httpd_alloc::MiMalloc;
//! ```
//!
//! Why not the `mimalloc` crate's allocator: it passes every request to
//! `mi_malloc_aligned`, even for the 8-byte alignment that every mimalloc block has anyway.
//! When the size class's current page is full, that call does not take a fresh page as
//! `mi_malloc` does; it over-allocates from a larger class (size + alignment - 1) and
//! aligns inside it, at about 220 instructions instead of about 20. Building a large
//! configuration tree hits that path for one allocation in six (callgrind,
//! bench/conftest.sh's 10,000 virtual hosts: 84,661 of 519,750).
#![no_std]
// The allocator interface is unsafe by definition; this crate is the one place for it.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_int, c_long, c_void};

use libmimalloc_sys as ffi;

/// Every mimalloc block is aligned to a machine word: sizes are whole words and pages
/// start aligned. Larger alignments go through mimalloc's aligned entry points.
const WORD: usize = core::mem::size_of::<usize>();

extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
}

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (mimalloc.h), which the Rust
/// bindings do not name. Its default is 1,000 (ms, options.c); a unit test checks both.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// Makes mimalloc give memory that has become free back to the OS at once, rather than a
/// second later (its default delay keeps the pages of a burst for the next one, and many
/// stay resident). For a server holding thousands of idle connections, whose buffers were
/// freed when they went idle: with 10,000 of them, 2,437 -> 1,170 bytes of RSS each
/// (bench/static.sh's idle row), with the same requests/s on every row. Call it first
/// thing in `main`.
pub fn purge_freed_memory_at_once() {
    // SAFETY: sets a plain integer option; mimalloc reads options with relaxed atomics.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// mimalloc behind Rust's [`GlobalAlloc`].
pub struct MiMalloc;

// SAFETY: each method forwards to the mimalloc function with the same contract (malloc,
// calloc, realloc, free, or their aligned forms when the alignment exceeds a word), so
// the returned blocks are valid for the layout, and `dealloc`/`realloc` receive only
// pointers mimalloc returned.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            ffi::mi_malloc(layout.size()).cast()
        } else {
            ffi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            ffi::mi_zalloc(layout.size()).cast()
        } else {
            ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        ffi::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn mi_option_get(option: c_int) -> c_long;
    }

    /// The option index is mimalloc's purge delay: its default (1,000 ms), then the value
    /// set.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads an integer option.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000);
        purge_freed_memory_at_once();
        // SAFETY: as above.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 0);
    }

    /// Blocks of every small size and alignment come back aligned, hold their bytes
    /// through a realloc, and free.
    #[test]
    fn blocks_are_aligned_and_keep_their_contents() {
        let a = MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 3, 8, 24, 40, 112, 1000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xa5, size);
                    let q = a.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xa5));
                    a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
