//! Exact sums of metric values, equal to Postgres's `sum(v::numeric)` for the same values.
//!
//! Postgres casts a `float8` to `numeric` through its text with 15 significant digits (`%.15g`),
//! and adds numerics exactly, keeping the largest display scale (digits after the point) of the
//! terms. [`ExactSum`] adds values the same way, so history can fold a step's metric values
//! into one row per rollup bucket before writing: the sum it writes, digits and scale, is the
//! one Postgres gives for the same values, however the events were batched.

use std::cmp::Ordering;

/// Limbs of a [`Magnitude`] are base 10^9.
const LIMB: u64 = 1_000_000_000;

/// A running exact sum; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct ExactSum {
    /// The sum is `small * 10^exponent` while that fits (nearly always: metric values of one
    /// bucket are of similar size).
    small: i128,
    /// Never above 0, and as low as the lowest exponent of any term, so `-exponent` is the
    /// sum's display scale.
    exponent: i32,
    /// Once `small` would overflow: the sum is `(positive - negative) * 10^exponent`.
    big: Option<Box<(Magnitude, Magnitude)>>,
}

impl ExactSum {
    /// Adds a value.
    pub fn add(&mut self, term: &Numeric) {
        if self.big.is_none() {
            if let Some((small, exponent)) = self.plus_small(term) {
                (self.small, self.exponent) = (small, exponent);
                return;
            }
            let magnitude = Magnitude::of(self.small.unsigned_abs());
            self.big = Some(Box::new(if self.small < 0 {
                (Magnitude::default(), magnitude)
            } else {
                (magnitude, Magnitude::default())
            }));
        }
        let (positive, negative) = &mut **self.big.as_mut().expect("set above");
        if term.exponent < self.exponent {
            let by = (self.exponent - term.exponent) as u32;
            positive.scale_up(by);
            negative.scale_up(by);
            self.exponent = term.exponent;
        }
        let side = if term.negative { negative } else { positive };
        side.add_shifted(term.digits, (term.exponent - self.exponent) as u32);
    }

    /// `small + term` and its exponent, if it fits in an `i128`.
    fn plus_small(&self, term: &Numeric) -> Option<(i128, i32)> {
        let pow10 = |k: i32| 10i128.checked_pow(u32::try_from(k).ok()?);
        let (mut small, mut exponent) = (self.small, self.exponent);
        if term.exponent < exponent {
            small = small.checked_mul(pow10(exponent - term.exponent)?)?;
            exponent = term.exponent;
        }
        let value = (term.digits as i128).checked_mul(pow10(term.exponent - exponent)?)?;
        let small = if term.negative { small.checked_sub(value)? } else { small.checked_add(value)? };
        Some((small, exponent))
    }

    /// The sum as `numeric` input text, with the scale Postgres's sum would have.
    pub fn to_numeric(&self) -> String {
        let (negative, digits) = match &self.big {
            None => (self.small < 0, self.small.unsigned_abs().to_string()),
            Some(big) => match big.0.cmp(&big.1) {
                Ordering::Less => (true, big.1.minus(&big.0).to_digits()),
                _ => (false, big.0.minus(&big.1).to_digits()),
            },
        };
        let negative = negative && digits.bytes().any(|b| b != b'0');
        let scale = (-self.exponent) as usize;
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        let sign = if negative { "-" } else { "" };
        if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    }
}

/// A finite value as Postgres reads it after `::numeric`: `digits * 10^exponent`, trailing
/// zeros removed from `digits`. Its scale is `-exponent`, or 0 if that is negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numeric {
    negative: bool,
    digits: u64,
    exponent: i32,
}

impl Numeric {
    /// `None` for NaN and infinities (which JSON cannot carry, so no report has them).
    pub fn of(value: f64) -> Option<Numeric> {
        if !value.is_finite() {
            return None;
        }
        // `%.15g`: rounded to 15 significant digits (ties to even, as C's printf).
        let text = format!("{:.14e}", value.abs());
        let (mantissa, exp) = text.split_once('e')?;
        let digits = mantissa.bytes().filter(u8::is_ascii_digit).fold(0u64, |n, b| n * 10 + (b - b'0') as u64);
        let exponent: i32 = exp.parse::<i32>().ok()? - 14;
        if digits == 0 {
            return Some(Numeric { negative: false, digits: 0, exponent: 0 });
        }
        let zeros = decimal_trailing_zeros(digits);
        Some(Numeric { negative: value < 0.0, digits: digits / 10u64.pow(zeros), exponent: exponent + zeros as i32 })
    }
}

/// Trailing decimal zeros of a non-zero integer.
fn decimal_trailing_zeros(mut n: u64) -> u32 {
    let mut zeros = 0;
    while n % 10 == 0 {
        n /= 10;
        zeros += 1;
    }
    zeros
}

/// An unsigned integer, little-endian limbs base 10^9 (high limbs may be zero).
#[derive(Debug, Clone, Default)]
struct Magnitude(Vec<u32>);

impl Magnitude {
    fn of(mut value: u128) -> Magnitude {
        let mut limbs = Vec::new();
        while value > 0 {
            limbs.push((value % LIMB as u128) as u32);
            value /= LIMB as u128;
        }
        Magnitude(limbs)
    }

    /// Multiplies by 10^by.
    fn scale_up(&mut self, by: u32) {
        if self.0.iter().all(|&l| l == 0) {
            return;
        }
        let mut carry = 0u64;
        let factor = 10u64.pow(by % 9);
        for limb in &mut self.0 {
            let v = *limb as u64 * factor + carry;
            *limb = (v % LIMB) as u32;
            carry = v / LIMB;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
        self.0.splice(0..0, std::iter::repeat_n(0, (by / 9) as usize));
    }

    /// Adds `digits * 10^shift`.
    fn add_shifted(&mut self, digits: u64, shift: u32) {
        let mut value = digits as u128 * 10u128.pow(shift % 9);
        let mut at = (shift / 9) as usize;
        let mut carry = 0u64;
        while value > 0 || carry > 0 {
            if at >= self.0.len() {
                self.0.resize(at + 1, 0);
            }
            let v = self.0[at] as u64 + (value % LIMB as u128) as u64 + carry;
            self.0[at] = (v % LIMB) as u32;
            carry = v / LIMB;
            value /= LIMB as u128;
            at += 1;
        }
    }

    /// `self - other`, for `self >= other`.
    fn minus(&self, other: &Magnitude) -> Magnitude {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for (i, &limb) in self.0.iter().enumerate() {
            let mut v = limb as i64 - other.0.get(i).copied().unwrap_or(0) as i64 - borrow;
            borrow = (v < 0) as i64;
            if v < 0 {
                v += LIMB as i64;
            }
            out.push(v as u32);
        }
        Magnitude(out)
    }

    /// Decimal digits, without leading zeros ("0" for zero).
    fn to_digits(&self) -> String {
        let mut limbs = self.0.iter().rev().skip_while(|&&l| l == 0);
        let Some(first) = limbs.next() else { return "0".to_owned() };
        let mut out = first.to_string();
        for limb in limbs {
            out.push_str(&format!("{limb:09}"));
        }
        out
    }

    fn significant(&self) -> &[u32] {
        let len = self.0.iter().rposition(|&l| l != 0).map_or(0, |i| i + 1);
        &self.0[..len]
    }
}

impl PartialEq for Magnitude {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Magnitude {}

impl PartialOrd for Magnitude {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Magnitude {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[f64]) -> String {
        let mut s = ExactSum::default();
        for v in values {
            s.add(&Numeric::of(*v).unwrap());
        }
        s.to_numeric()
    }

    #[test]
    fn a_sum_of_decimal_fractions_is_exact_and_keeps_the_largest_scale() {
        assert_eq!(sum(&[0.1, 0.2]), "0.3");
        assert_eq!(sum(&[0.1, 0.25, 3.0]), "3.35");
        assert_eq!(sum(&[1.5, 1.5]), "3.0");
        assert_eq!(sum(&[0.125, 0.875]), "1.000");
        assert_eq!(sum(&[]), "0");
        assert_eq!(sum(&[0.0, -0.0]), "0");
    }

    #[test]
    fn values_are_read_with_fifteen_significant_digits_like_postgres() {
        assert_eq!(sum(&[1.0 / 3.0]), "0.333333333333333");
        assert_eq!(sum(&[2.0 / 3.0]), "0.666666666666667");
        assert_eq!(sum(&[1e-20]), "0.00000000000000000001");
        assert_eq!(sum(&[1.5e20]), "150000000000000000000");
        assert_eq!(sum(&[123456789012345678.0]), "123456789012346000");
        // Ties go to the even digit.
        assert_eq!(sum(&[123456789012345.5]), "123456789012346");
        assert_eq!(sum(&[123456789012344.5]), "123456789012344");
    }

    #[test]
    fn negative_terms_cancel_and_the_sign_follows_the_larger_side() {
        assert_eq!(sum(&[1.25, -1.25]), "0.00");
        assert_eq!(sum(&[-0.5, 0.25]), "-0.25");
        assert_eq!(sum(&[-1e10, 1e-10, 1e10]), "0.0000000001");
        assert_eq!(sum(&[-3.0, -4.5]), "-7.5");
    }

    #[test]
    fn terms_far_apart_in_scale_carry_across_limbs() {
        assert_eq!(sum(&[1e30, 1e-30]), format!("1{}.{}1", "0".repeat(30), "0".repeat(29)));
        assert_eq!(sum(&[999_999_999.0, 1.0]), "1000000000");
        // Past an i128 and back: the small sum moves to limbs and stays exact.
        assert_eq!(sum(&[1e30, 1e-30, -1e30]), format!("0.{}1", "0".repeat(29)));
        assert_eq!(sum(&[-1e30, 1e-30]), format!("-{}.{}9", "9".repeat(30), "9".repeat(29)));
        let many = vec![0.7; 100_000];
        assert_eq!(sum(&many), "70000.0");
    }

    #[test]
    fn the_order_of_the_terms_does_not_change_the_sum() {
        let values = [3.7, -12.25, 1e-7, 4.0e12, -0.001, 17.0, 2.0 / 7.0];
        let forward = sum(&values);
        let mut backward = values;
        backward.reverse();
        assert_eq!(sum(&backward), forward);
        let (mut first, mut second) = (values[..3].to_vec(), values[3..].to_vec());
        second.append(&mut first);
        assert_eq!(sum(&second), forward);
    }
}
