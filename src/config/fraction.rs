//! Decimal text to a fraction in 0…1, read to the same bits as `str::parse::<f64>` reads it.
//!
//! `READINESS_MIN_CLERK_SHARE` is the worker's only floating-point setting. Reading it with
//! `str::parse::<f64>` links core's general float parser into the wasm, whose table of 128-bit
//! powers of five alone is 10 KB of incompressible data (with its code, 13 KB of the gzipped
//! upload). A share needs none of that: its text is `digits / 10^k`, and when both are exact
//! `f64`s (at most 15 significant digits, `k` ≤ 22) one IEEE division gives the correctly
//! rounded quotient — the same bits core gives. A text beyond those bounds (a share written
//! with more precision than any figure it is compared with) is refused, not approximated.

/// Significant digits read: any 15-digit integer is an exact `f64` (below 2^53).
pub const MAX_SIGNIFICANT_DIGITS: usize = 15;
/// The powers of ten that are exact `f64`s (5^22 < 2^53).
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The number `text` writes (`[+-]digits[.digits][(e|E)[+-]digits]`, as core's grammar has it)
/// when it lies in 0…1 (−0 included, as `(0.0..=1.0).contains` takes it) and has at most
/// [`MAX_SIGNIFICANT_DIGITS`] significant digits; `None` otherwise.
pub fn parse_fraction(text: &str) -> Option<f64> {
    let mut rest = text.as_bytes();
    let negative = take_sign(&mut rest);
    let integer = take_digits(&mut rest);
    let fraction = match rest.split_first() {
        Some((b'.', after)) => {
            rest = after;
            take_digits(&mut rest)
        }
        _ => &[],
    };
    if integer.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut exponent = 0i64;
    if let Some((b'e' | b'E', after)) = rest.split_first() {
        rest = after;
        let exponent_negative = take_sign(&mut rest);
        let digits = take_digits(&mut rest);
        if digits.is_empty() {
            return None;
        }
        // Saturated: an exponent this large makes any non-zero mantissa fall outside the bounds.
        for &d in digits {
            exponent = (exponent * 10 + i64::from(d - b'0')).min(1 << 20);
        }
        if exponent_negative {
            exponent = -exponent;
        }
    }
    if !rest.is_empty() {
        return None;
    }

    // value = significant × 10^power, without leading or trailing zeros in `significant`.
    let digits = || integer.iter().chain(fraction);
    let Some(first) = digits().position(|&d| d != b'0') else {
        return Some(if negative { -0.0 } else { 0.0 });
    };
    let mut significant: Vec<u8> = digits().skip(first).copied().collect();
    let mut power = exponent - fraction.len() as i64;
    while significant.last() == Some(&b'0') {
        significant.pop();
        power += 1;
    }
    if significant.len() > MAX_SIGNIFICANT_DIGITS || negative {
        return None;
    }
    // power > 0 writes an integer of at least 10; a scale past 10^22 is no exact divisor.
    let divisor = usize::try_from(-power)
        .ok()
        .and_then(|scale| EXACT_POWERS_OF_TEN.get(scale))?;
    let numerator = significant
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    let value = numerator as f64 / divisor;
    (value <= 1.0).then_some(value)
}

fn take_sign(text: &mut &[u8]) -> bool {
    match text.split_first() {
        Some((b'-', rest)) => {
            *text = rest;
            true
        }
        Some((b'+', rest)) => {
            *text = rest;
            false
        }
        _ => false,
    }
}

/// The leading ASCII digits of `text`, taken off it.
fn take_digits<'a>(text: &mut &'a [u8]) -> &'a [u8] {
    let n = text.iter().take_while(|b| b.is_ascii_digit()).count();
    let (digits, rest) = text.split_at(n);
    *text = rest;
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// core's parser, then the range check: what the setting took before.
    fn core(text: &str) -> Option<f64> {
        text.parse::<f64>()
            .ok()
            .filter(|share| (0.0..=1.0).contains(share))
    }

    fn same_as_core(text: &str) {
        let ours = parse_fraction(text).map(f64::to_bits);
        assert!(ours.is_some(), "{text:?} refused");
        assert_eq!(ours, core(text).map(f64::to_bits), "{text:?}");
    }

    #[test]
    fn reads_shares_as_core_reads_them() {
        for text in [
            "0.99",
            "0.95",
            "1",
            "0",
            "1.0",
            "0.5",
            ".5",
            "5e-1",
            "+.5",
            "+0.9",
            "-0",
            "-0.0",
            "-0e5",
            "0e-999",
            "0.99e0",
            "99e-2",
            "9.9E-1",
            "10e-1",
            "000.500000",
            "0.000001",
            "1e-22",
            "0.999999999999999",
            "0.1",
            "0.3",
            "0.7",
            "0.123456789012345",
            "0.1234567890123450000000",
        ] {
            same_as_core(text);
        }
    }

    #[test]
    fn refuses_what_is_not_a_share_or_not_exact() {
        for text in [
            "",
            ".",
            "+",
            "-",
            "e5",
            ".e1",
            "0.5e",
            "0.5e+",
            "1.5",
            "2",
            "10e-0",
            "-0.5",
            "-1e-400",
            "0x1",
            " 0.5",
            "0.5 ",
            "0,5",
            "NaN",
            "inf",
            "infinity",
            "1e-23",
            "1e-400",
            "0.1234567890123456",
            "1e1",
            "0.5e99999999999999999999",
            "abc",
            "1_0",
        ] {
            assert_eq!(parse_fraction(text), None, "{text:?}");
        }
    }

    /// Random shares at every precision and scale this reads, written three ways: the bits must
    /// be core's (one division of exact operands is correctly rounded, as core's result is).
    #[test]
    fn rounds_as_core_at_every_precision() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut next = move || rng.gen::<u64>();
        for _ in 0..20_000 {
            let digits = 1 + (next() % 15) as u32;
            let scale = digits + (next() % (23 - u64::from(digits))) as u32;
            let numerator = next() % 10u64.pow(digits);
            let fraction = format!("{numerator:0width$}", width = scale as usize);
            same_as_core(&format!("0.{fraction}"));
            same_as_core(&format!("{numerator}e-{scale}"));
            same_as_core(&format!("+.{fraction}000"));
        }
    }
}
