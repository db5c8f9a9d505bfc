//! HyperLogLog (Flajolet et al. 2007) over 64-bit hashes, for unique visitors in bounded
//! memory: 2^14 one-byte registers, a standard error of about 0.8%. Written here because
//! the visitor key is already hashed once for the exact mode, and the estimator over such
//! hashes is a few lines; the crates on offer hash their own keys.

const P: u32 = 14;
const M: usize = 1 << P;

#[derive(Debug, Clone)]
pub struct HyperLogLog {
    registers: Box<[u8]>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog {
            registers: vec![0; M].into_boxed_slice(),
        }
    }
}

impl HyperLogLog {
    /// Adds an element by its (well mixed) 64-bit hash.
    pub fn insert(&mut self, hash: u64) {
        let idx = (hash >> (64 - P)) as usize;
        let rank = ((hash << P) | (1 << (P - 1))).leading_zeros() as u8 + 1;
        let r = &mut self.registers[idx];
        if rank > *r {
            *r = rank;
        }
    }

    pub fn merge(&mut self, other: &HyperLogLog) {
        for (a, b) in self.registers.iter_mut().zip(other.registers.iter()) {
            *a = (*a).max(*b);
        }
    }

    /// The estimated count, with the small-range (linear counting) correction.
    pub fn count(&self) -> u64 {
        let m = M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let estimate = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        if estimate <= 2.5 * m && zeros > 0 {
            (m * (m / zeros as f64).ln()).round() as u64
        } else {
            estimate.round() as u64
        }
    }
}

/// A 64-bit finalizer (splitmix64) so that any hash feeds the registers evenly.
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_two_percent() {
        for n in [100u64, 10_000, 200_000] {
            let mut h = HyperLogLog::default();
            let mut other = HyperLogLog::default();
            for i in 0..n {
                if i % 2 == 0 {
                    h.insert(mix(i))
                } else {
                    other.insert(mix(i))
                }
            }
            h.merge(&other);
            let err = (h.count() as f64 - n as f64).abs() / n as f64;
            assert!(err < 0.02, "n={n} estimate={}", h.count());
        }
    }
}
