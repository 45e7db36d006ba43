//! The distinct-user counter of the convergence figures: a sparse HyperLogLog over a fixed-key
//! SipHash-1-3 of the user id (why that hash: see [`super`]).

use siphasher::sip::SipHasher13;

const HLL_BITS: u32 = 12;
const HLL_REGISTERS: usize = 1 << HLL_BITS;

/// A sparse HyperLogLog: the non-zero registers, each packed `index << 8 | rank` (the stored
/// form), sorted by index. A sorted `Vec` rather than a map: at most 4096 small entries, and one
/// binary search per signed-in request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hll {
    registers: Vec<u32>,
}

impl Hll {
    /// The same in every isolate and release (see the module doc): never change the key.
    pub fn hash(user_id: &str) -> u64 {
        const KEY: (u64, u64) = (0x6175_7468_2d62_7269, 0x6467_652d_686c_6c31);
        SipHasher13::new_with_keys(KEY.0, KEY.1).hash(user_id.as_bytes())
    }

    pub fn add(&mut self, hash: u64) {
        let index = (hash >> (64 - HLL_BITS)) as u16;
        let rest = hash << HLL_BITS;
        let rank = (rest.leading_zeros().min(64 - HLL_BITS) + 1) as u8;
        self.raise((u32::from(index) << 8) | u32::from(rank));
    }

    /// Raises one register (`index << 8 | rank`) to at least that rank.
    fn raise(&mut self, packed: u32) {
        match self
            .registers
            .binary_search_by_key(&(packed >> 8), |&p| p >> 8)
        {
            // Same index: the larger packed value has the larger rank.
            Ok(at) => self.registers[at] = self.registers[at].max(packed),
            Err(at) => self.registers.insert(at, packed),
        }
    }

    pub fn merge(&mut self, other: &Hll) {
        if other.registers.is_empty() {
            return;
        }
        // Both sorted by index: one pass, the larger rank where both have a register.
        let (mine, theirs) = (&self.registers, &other.registers);
        let mut merged = Vec::with_capacity(mine.len() + theirs.len());
        let (mut i, mut j) = (0, 0);
        while i < mine.len() && j < theirs.len() {
            let (a, b) = (mine[i], theirs[j]);
            if a >> 8 == b >> 8 {
                merged.push(a.max(b));
                i += 1;
                j += 1;
            } else if a >> 8 < b >> 8 {
                merged.push(a);
                i += 1;
            } else {
                merged.push(b);
                j += 1;
            }
        }
        merged.extend_from_slice(&mine[i..]);
        merged.extend_from_slice(&theirs[j..]);
        self.registers = merged;
    }

    pub fn estimate(&self) -> u64 {
        let m = HLL_REGISTERS as f64;
        let zeros = HLL_REGISTERS - self.registers.len();
        let sum: f64 = zeros as f64
            + self
                .registers
                .iter()
                .map(|&p| 2f64.powi(-((p & 0xff) as i32)))
                .sum::<f64>();
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }

    /// Packed `index << 8 | rank`, for storage.
    pub(super) fn packed(&self) -> Vec<u32> {
        self.registers.clone()
    }

    pub(super) fn from_packed(packed: &[u32]) -> Hll {
        let mut hll = Hll::default();
        for &p in packed {
            if ((p >> 8) as usize) < HLL_REGISTERS && p & 0xff > 0 {
                hll.raise(p);
            }
        }
        hll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hll_is_exact_for_small_sets_and_close_for_large_ones() {
        let mut hll = Hll::default();
        for id in ["a", "b", "c", "a", "b"] {
            hll.add(Hll::hash(id));
        }
        assert_eq!(hll.estimate(), 3);
        let mut big = Hll::default();
        for i in 0..50_000 {
            big.add(Hll::hash(&format!("user-{i}")));
        }
        let estimate = big.estimate() as f64;
        assert!((estimate - 50_000.0).abs() / 50_000.0 < 0.05, "{estimate}");
    }

    /// SipHash-1-3 of `user_2abc` under the fixed key.
    const PINNED: u64 = 14_908_552_068_929_163_259;

    #[test]
    fn hll_hash_is_fixed_across_isolates_and_releases() {
        // Register sets from every isolate of the last day are merged: the hash must never
        // depend on the isolate, the process or the Rust release.
        assert_eq!(
            Hll::hash("user_2abc"),
            Hll::hash(&String::from("user_2abc"))
        );
        assert_eq!(Hll::hash("user_2abc"), PINNED);
        assert_ne!(Hll::hash("user_2abc"), Hll::hash("user_2abd"));
    }

    #[test]
    fn hll_registers_stay_sorted_and_keep_the_largest_rank() {
        let mut hll = Hll::default();
        for id in 0..500 {
            hll.add(Hll::hash(&format!("id-{id}")));
        }
        let packed = hll.packed();
        assert!(
            packed.windows(2).all(|w| w[0] >> 8 < w[1] >> 8),
            "sorted, one per index"
        );
        // Stored registers in any order, repeated, or out of range read back the same.
        let mut shuffled: Vec<u32> = packed.iter().rev().copied().collect();
        shuffled.extend(packed.iter().map(|p| p & !0xff | 1));
        shuffled.extend([(4096 << 8) | 3, 7 << 8]);
        assert_eq!(Hll::from_packed(&shuffled), hll);
        // A merge equals adding both sets to one.
        let (mut a, mut b, mut both) = (Hll::default(), Hll::default(), Hll::default());
        for id in 0..300 {
            let h = Hll::hash(&format!("m-{id}"));
            if id % 3 == 0 {
                a.add(h)
            } else {
                b.add(h)
            }
            both.add(h);
        }
        a.merge(&b);
        assert_eq!(a, both);
    }

    #[test]
    fn hll_merge_is_a_union() {
        let (mut a, mut b) = (Hll::default(), Hll::default());
        for i in 0..40 {
            a.add(Hll::hash(&format!("u{i}")));
        }
        for i in 20..60 {
            b.add(Hll::hash(&format!("u{i}")));
        }
        let before = a.estimate();
        a.merge(&b);
        // 60 users in 4096 registers may share one: linear counting is then off by one.
        assert!((59..=61).contains(&a.estimate()), "{}", a.estimate());
        assert!(a.estimate() > before + 15);
    }
}
