//! Decimal text to a fraction in 0…1, read exactly as `str::parse::<f64>` reads it.
//!
//! `READINESS_MIN_CLERK_SHARE` is the worker's only floating-point setting. Reading it with
//! `str::parse::<f64>` links core's general float parser into the wasm, whose table of 128-bit
//! powers of five alone is 10 KB of incompressible data (with its code, 14 KB of the gzipped
//! upload).
//! A value that has to lie in 0…1 needs none of that: the text is an exact rational number
//! `digits / 10^k`, and long division of big integers gives its correctly rounded `f64` (round
//! half to even, like core), the same bits for every text, in microseconds.

use std::cmp::Ordering;

/// Significant digits kept of a longer text; the rest only say whether it goes on past them.
/// Every `f64` and every midpoint between two neighbours has at most 767 significant digits,
/// so two texts that agree on 800 digits and both go on round the same way.
const MAX_DIGITS: usize = 800;

/// What `text.parse::<f64>()` gives, when that is a number from 0 to 1 (−0 included, as
/// `(0.0..=1.0).contains` takes it); `None` for anything else: text that is not a decimal
/// number as core reads one, infinities, NaN, and numbers outside 0…1.
pub fn parse_fraction(text: &str) -> Option<f64> {
    let decimal = Decimal::parse(text.as_bytes())?;
    let magnitude = decimal.magnitude()?;
    let value = if decimal.negative {
        -magnitude
    } else {
        magnitude
    };
    (0.0..=1.0).contains(&value).then_some(value)
}

/// A decimal number as core's grammar has it: `[+-]digits[.digits][(e|E)[+-]digits]`, at least
/// one digit in the mantissa, nothing else around it.
struct Decimal<'a> {
    negative: bool,
    /// The mantissa's digits, the point left out; may start or end with zeros.
    integer: &'a [u8],
    fraction: &'a [u8],
    /// The written exponent, saturated as core saturates it (it stops reading digits once the
    /// value passes 65,535), so absurd exponents give the same number as in core.
    exponent: i64,
}

impl<'a> Decimal<'a> {
    fn parse(mut text: &'a [u8]) -> Option<Decimal<'a>> {
        let negative = text.first() == Some(&b'-');
        if matches!(text.first(), Some(b'-' | b'+')) {
            text = &text[1..];
        }
        let integer = take_digits(&mut text);
        let mut fraction: &[u8] = &[];
        if let Some((b'.', rest)) = text.split_first() {
            text = rest;
            fraction = take_digits(&mut text);
        }
        if integer.is_empty() && fraction.is_empty() {
            return None;
        }
        let mut exponent = 0i64;
        if let Some((b'e' | b'E', rest)) = text.split_first() {
            text = rest;
            let exponent_negative = text.first() == Some(&b'-');
            if matches!(text.first(), Some(b'-' | b'+')) {
                text = &text[1..];
            }
            let digits = take_digits(&mut text);
            if digits.is_empty() {
                return None;
            }
            for &d in digits {
                if exponent < 0x10000 {
                    exponent = exponent * 10 + i64::from(d - b'0');
                }
            }
            if exponent_negative {
                exponent = -exponent;
            }
        }
        text.is_empty().then_some(Decimal {
            negative,
            integer,
            fraction,
            exponent,
        })
    }

    /// The nearest `f64` to the number's absolute value, ties to even; `None` when that is 2 or
    /// more (no fraction: not worth computing).
    fn magnitude(&self) -> Option<f64> {
        // value = digits × 10^power, digits without leading or trailing zeros.
        let mut digits = [self.integer, self.fraction].concat();
        let mut power = self.exponent - self.fraction.len() as i64;
        while digits.last() == Some(&b'0') {
            digits.pop();
            power += 1;
        }
        let Some(leading) = digits.iter().position(|&d| d != b'0') else {
            return Some(0.0);
        };
        let mut digits = &digits[leading..];
        // value < 10^top and ≥ 10^(top−1).
        let top = power + digits.len() as i64;
        if top >= 2 {
            return None;
        }
        // Below 10^−324, under half the smallest subnormal (4.9e−324): rounds to zero.
        if top <= -324 {
            return Some(0.0);
        }
        let mut sticky = false;
        if digits.len() > MAX_DIGITS {
            power += (digits.len() - MAX_DIGITS - 1) as i64;
            digits = &digits[..MAX_DIGITS];
            sticky = true;
        }
        let mut numerator = Big(Vec::new());
        for &d in digits {
            numerator.mul_add(10, u32::from(d - b'0'));
        }
        if sticky {
            // The dropped digits end in a non-zero one (trailing zeros are gone): a 1 one place
            // further keeps the number strictly between the same 800-digit neighbours.
            numerator.mul_add(10, 1);
        }
        // power ≤ 0, as top = power + digits ≤ 1 and there is a digit.
        let mut denominator = Big(vec![1]);
        for _ in 0..-power {
            denominator.mul_add(10, 0);
        }

        // 2^binary ≤ value < 2^(binary+1).
        let spread = numerator.bits() as i64 - denominator.bits() as i64;
        // value ≥ 2^spread ⇔ numerator ≥ denominator × 2^spread (the shift is put on the side
        // where it multiplies).
        let binary = if numerator
            .shifted((-spread).max(0) as u32)
            .compare(&denominator.shifted(spread.max(0) as u32))
            .is_ge()
        {
            spread
        } else {
            spread - 1
        };
        if binary >= 1 {
            return None;
        }
        // Units of the result's last place: 2^(binary−52), or 2^−1074 for a subnormal.
        let scale = (52 - binary).min(1074) as u32;
        let (quotient, remainder) = numerator.shifted(scale).div_small_quotient(&denominator);
        let round_up = match remainder.shifted(1).compare(&denominator) {
            Ordering::Greater => true,
            Ordering::Equal => quotient & 1 == 1,
            Ordering::Less => false,
        };
        let units = quotient + u64::from(round_up);
        // units ≤ 2^53 and units × 2^−scale is an `f64`: both factors and the product are exact.
        Some(units as f64 * power_of_two(scale))
    }
}

/// The leading ASCII digits of `text`, taken off it.
fn take_digits<'a>(text: &mut &'a [u8]) -> &'a [u8] {
    let n = text.iter().take_while(|b| b.is_ascii_digit()).count();
    let (digits, rest) = text.split_at(n);
    *text = rest;
    digits
}

/// 2^−scale, for scale in 0…1074 (subnormal past 1022).
fn power_of_two(scale: u32) -> f64 {
    if scale <= 1022 {
        f64::from_bits(u64::from(1023 - scale) << 52)
    } else {
        f64::from_bits(1 << (1074 - scale))
    }
}

/// A non-negative big integer, 32-bit limbs, least significant first, no high zero limbs.
struct Big(Vec<u32>);

impl Big {
    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    /// self = self × factor + add.
    fn mul_add(&mut self, factor: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.0 {
            let wide = u64::from(*limb) * u64::from(factor) + carry;
            *limb = wide as u32;
            carry = wide >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn bits(&self) -> u32 {
        match self.0.last() {
            None => 0,
            Some(top) => 32 * (self.0.len() as u32 - 1) + (32 - top.leading_zeros()),
        }
    }

    fn shifted(&self, shift: u32) -> Big {
        let (limbs, bits) = ((shift / 32) as usize, shift % 32);
        let mut out = vec![0; limbs];
        let mut carry = 0u32;
        for &limb in &self.0 {
            out.push((limb << bits) | carry);
            carry = if bits == 0 { 0 } else { limb >> (32 - bits) };
        }
        out.push(carry);
        let mut big = Big(out);
        big.trim();
        big
    }

    fn compare(&self, other: &Big) -> Ordering {
        if self.0.len() != other.0.len() {
            return self.0.len().cmp(&other.0.len());
        }
        for (a, b) in self.0.iter().zip(&other.0).rev() {
            if a != b {
                return a.cmp(b);
            }
        }
        Ordering::Equal
    }

    /// self −= other, for other ≤ self.
    fn subtract(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let wide = i64::from(*limb) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            *limb = wide.rem_euclid(1 << 32) as u32;
            borrow = i64::from(wide < 0);
        }
        self.trim();
    }

    /// (self / divisor, self mod divisor), for a quotient below 2^54.
    fn div_small_quotient(mut self, divisor: &Big) -> (u64, Big) {
        let mut quotient = 0u64;
        for bit in (0..54).rev() {
            let shifted = divisor.shifted(bit);
            if self.compare(&shifted).is_ge() {
                self.subtract(&shifted);
                quotient |= 1 << bit;
            }
        }
        (quotient, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the setting took before: core's parser, then the range check.
    fn core(text: &str) -> Option<f64> {
        text.parse::<f64>()
            .ok()
            .filter(|share| (0.0..=1.0).contains(share))
    }

    fn same_as_core(text: &str) {
        assert_eq!(
            parse_fraction(text).map(f64::to_bits),
            core(text).map(f64::to_bits),
            "{text:?}"
        );
    }

    #[test]
    fn reads_what_core_reads_and_refuses_what_it_refuses() {
        for text in [
            "0.99",
            "0.95",
            "1",
            "0",
            "1.0",
            "0.5",
            ".5",
            "5.",
            "+.5",
            "+0.9",
            "-0",
            "-0.0",
            "-0e5",
            "-0.5",
            "-1e-400",
            "1e-400",
            "0.99e0",
            "99e-2",
            "9.9E-1",
            "0.0099e+2",
            "000.990",
            "1e0",
            "10e-1",
            "100e-2",
            "1.00000000000000011",
            "1.0000000000000002",
            "1.00000000000000011102230246251565404236316680908203125",
            "1.00000000000000011102230246251565404236316680908203126",
            "0.9999999999999999999",
            "4.9406564584124654e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1e-323",
            "2.2250738585072011e-308",
            "2.2250738585072014e-308",
            "1.5",
            "2",
            "10",
            "99",
            "1e1",
            "1e2",
            "9e0",
            "1e99999999999999999999",
            "1e-99999999999999999999",
            "0e99999999999",
            "",
            "+",
            "-",
            ".",
            "e1",
            "1e",
            "1e+",
            "1e-",
            "--1",
            "+-1",
            "1..0",
            "0.9 ",
            " 0.9",
            "0,9",
            "0x1",
            "1_0",
            "½",
            "١",
            "inf",
            "-inf",
            "infinity",
            "NaN",
            "nan",
            "-nan",
            "1e1.5",
            "0.5e",
            "0.5f",
            "e",
            "E5",
        ] {
            same_as_core(text);
        }
    }

    #[test]
    fn saturates_huge_exponents_as_core_does() {
        let zeros = "0".repeat(70_000);
        for text in [
            format!("0.{zeros}1e70001"),
            format!("0.{zeros}1e65536"),
            format!("1{zeros}e-70000"),
            format!("1{zeros}e-70001"),
            format!("0.{zeros}1e+00000000000000000000070001"),
            // Read as 0.{zeros}1e70000 (= 0.1): the digits after 70000 are not read.
            format!("0.{zeros}1e700001"),
            format!("0.{zeros}1e7000012345678901234567890"),
            format!("0.{zeros}5e65536"),
        ] {
            same_as_core(&text);
        }
    }

    /// A deterministic stream of 64-bit values (xorshift), so a failure names its text.
    fn randoms(mut state: u64) -> impl Iterator<Item = u64> {
        std::iter::repeat_with(move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        })
    }

    /// Fractions of every magnitude down to the subnormals: random bits below 1.0.
    fn fractions(seed: u64, n: usize) -> impl Iterator<Item = f64> {
        randoms(seed)
            .map(|r| f64::from_bits(r % 0x3ff0_0000_0000_0000))
            .take(n)
    }

    #[test]
    fn rounds_as_core_at_every_precision() {
        for x in fractions(0x9e37_79b9_7f4a_7c15, 3_000) {
            same_as_core(&format!("{x:e}"));
            same_as_core(&format!("{x}"));
            for digits in [0, 1, 2, 5, 15, 16, 17, 18, 19, 20, 25, 40] {
                same_as_core(&format!("{x:.digits$e}"));
            }
        }
    }

    /// Digits after the point that write every f64 below 2 exactly (2^−1074 has 1074), and
    /// half of any of them.
    const EXACT: usize = 1076;

    /// x written out exactly, `EXACT` digits after the point.
    fn exact(x: f64) -> String {
        format!("{x:.EXACT$}")
    }

    /// a + b, two texts written by `exact` (or `halve`): the same length, one digit before the
    /// point, sum below 10.
    fn add(a: &str, b: &str) -> String {
        assert_eq!(a.len(), b.len());
        let mut sum = Vec::with_capacity(a.len());
        let mut carry = 0;
        for (p, q) in a.bytes().rev().zip(b.bytes().rev()) {
            if p == b'.' {
                sum.push(b'.');
                continue;
            }
            let d = (p - b'0') + (q - b'0') + carry;
            sum.push(b'0' + d % 10);
            carry = d / 10;
        }
        assert_eq!(carry, 0);
        sum.reverse();
        String::from_utf8(sum).unwrap()
    }

    /// a / 2, exactly, for a text written by `exact`.
    fn halve(a: &str) -> String {
        let mut half = String::with_capacity(a.len());
        let mut rest = 0;
        for c in a.bytes() {
            if c == b'.' {
                half.push('.');
                continue;
            }
            let d = rest * 10 + (c - b'0');
            half.push(char::from(b'0' + d / 2));
            rest = d % 2;
        }
        assert_eq!(rest, 0, "{a} needs more digits to halve");
        half
    }

    #[test]
    fn breaks_exact_ties_to_even_and_near_ties_to_the_nearer() {
        let xs = fractions(0x2545_f491_4f6c_dd1d, 400);
        // Subnormals and the edges of the range, which random bits seldom give.
        let edges = [
            0.0,
            f64::from_bits(1),
            f64::from_bits(2),
            f64::from_bits(0x000f_ffff_ffff_ffff),
        ];
        let edges =
            edges
                .into_iter()
                .chain([f64::MIN_POSITIVE, 0.5, 0.99, 1.0 - f64::EPSILON / 2.0, 1.0]);
        for x in xs.chain(edges) {
            // The midpoint of x and its successor: x + half an ulp.
            let ulp = f64::from_bits(x.to_bits() + 1) - x;
            let tie = add(&exact(x), &halve(&exact(ulp)));
            let tie = tie.trim_end_matches('0');
            same_as_core(tie);
            // Just above the tie, past the digits kept exactly: still read as above it.
            same_as_core(&format!("{tie}{}1", "0".repeat(900)));
            // Just below: the tie's last digit lowered, nines after it.
            let mut below = tie.as_bytes().to_vec();
            *below.last_mut().unwrap() -= 1;
            below.extend_from_slice(b"999999999999999999999");
            same_as_core(std::str::from_utf8(&below).unwrap());
        }
    }

    #[test]
    fn long_texts() {
        for len in [799, 800, 801, 802, 1_000, 5_000] {
            same_as_core(&format!("0.{}", "9".repeat(len)));
            same_as_core(&format!("0.5{}", "0".repeat(len)));
            same_as_core(&format!("0.5{}1", "0".repeat(len)));
            same_as_core(&format!("1.{}1", "0".repeat(len)));
            same_as_core(&format!("{}1e-{len}", "0".repeat(len)));
        }
    }
}
