//! Stable sorting compiled once for the whole worker.
//!
//! `slice::sort_by` compiles a copy of the standard library's sort (3–5 KB of wasm) for every
//! element type and comparator it is used with. The lists this worker sorts are small and off the
//! hot path (admin answers, the batch's bookkeeping), so [`sort_by`] sorts *positions* with one
//! shared copy, through the caller's comparison, then moves the elements into place with swaps:
//! the same order as `slice::sort_by`, equal elements kept in their order.

use std::cmp::Ordering;

/// `slice.sort_by(compare)`, with the same result.
pub fn sort_by<T>(slice: &mut [T], compare: impl Fn(&T, &T) -> Ordering) {
    let swaps = sorting_swaps(slice.len(), &|a, b| compare(&slice[a], &slice[b]));
    for (a, b) in swaps {
        slice.swap(a, b);
    }
}

/// `slice.sort_by_key(key)`, with the same result.
pub fn sort_by_key<T, K: Ord>(slice: &mut [T], key: impl Fn(&T) -> K) {
    sort_by(slice, |a, b| key(a).cmp(&key(b)));
}

/// The swaps that sort `len` elements compared by position: positions are sorted stably, then
/// each cycle of that permutation is walked once (at most `len` swaps).
#[inline(never)]
fn sorting_swaps(len: usize, compare: &dyn Fn(usize, usize) -> Ordering) -> Vec<(usize, usize)> {
    // source[k]: the position of the element that belongs at k.
    let mut source: Vec<usize> = (0..len).collect();
    source.sort_by(|&a, &b| compare(a, b));
    let mut swaps = Vec::new();
    for start in 0..len {
        let mut at = start;
        while source[at] != start {
            let from = source[at];
            swaps.push((at, from));
            source[at] = at;
            at = from;
        }
        source[at] = at;
    }
    swaps
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn sorts_as_the_standard_library_does_and_keeps_equal_elements_in_order() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut next = move || rng.gen::<u64>();
        for len in 0..60 {
            for _ in 0..20 {
                // Few distinct keys, so many ties; the second field tells ties apart.
                let items: Vec<(u64, usize)> = (0..len).map(|i| (next() % 5, i)).collect();
                let mut ours = items.clone();
                sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
                let mut theirs = items.clone();
                theirs.sort_by_key(|a| a.0);
                assert_eq!(ours, theirs);
                let mut reversed = items.clone();
                sort_by_key(&mut reversed, |item| std::cmp::Reverse(item.0));
                let mut theirs = items;
                theirs.sort_by_key(|item| std::cmp::Reverse(item.0));
                assert_eq!(reversed, theirs);
            }
        }
        let mut words = vec!["pear", "apple", "fig", "apple", "kiwi"];
        sort_by(&mut words, |a, b| a.cmp(b));
        assert_eq!(words, ["apple", "apple", "fig", "kiwi", "pear"]);
    }

    #[test]
    fn every_permutation_of_six_is_sorted() {
        fn permutations(rest: Vec<u8>, done: Vec<u8>, out: &mut Vec<Vec<u8>>) {
            if rest.is_empty() {
                out.push(done);
                return;
            }
            for i in 0..rest.len() {
                let mut rest = rest.clone();
                let mut done = done.clone();
                done.push(rest.remove(i));
                permutations(rest, done, out);
            }
        }
        let mut all = Vec::new();
        permutations((0..6).collect(), Vec::new(), &mut all);
        assert_eq!(all.len(), 720);
        for mut p in all {
            sort_by(&mut p, |a, b| a.cmp(b));
            assert_eq!(p, [0, 1, 2, 3, 4, 5]);
        }
    }
}
