//! Bit-parallel Jaro, Jaro–Winkler and Levenshtein for strings of up to 64 characters (names,
//! emails, most identifiers), without allocation per pair; longer strings go to `strsim`.
//! Results equal `strsim`'s exactly (checked on random strings below).
//!
//! A [`Matcher`] keeps a table of character positions (a 64-bit mask per character of one
//! string) that is cleared after each pair by resetting only the entries it set, so a batch of
//! pairs costs no memset per pair. ASCII strings are read as bytes; others are decoded to
//! characters into buffers the matcher reuses. Characters below 256 (ASCII and Latin-1, which
//! covers most accented Latin letters) index the table directly; others go to a short list.

use std::cell::RefCell;

use datafusion::error::Result;
use datafusion::logical_expr::ColumnarValue;

use crate::util::map_pairs;

/// Jaro similarity (as `strsim::jaro`).
pub fn jaro(a: &str, b: &str) -> f64 {
    with_matcher(|m| m.jaro(a, b))
}

/// Jaro–Winkler similarity (as `strsim::jaro_winkler`: prefix bonus up to 4 characters,
/// scaling 0.1, applied above 0.7).
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    with_matcher(|m| m.jaro_winkler(a, b))
}

/// 1 − Levenshtein distance / the longer length in characters (as
/// `strsim::normalized_levenshtein`; 1 for two empty strings).
pub fn normalized_levenshtein(a: &str, b: &str) -> f64 {
    with_matcher(|m| m.normalized_levenshtein(a, b))
}

/// `f(a, b)` per row with one [`Matcher`] for the batch (NULL when either is NULL).
pub fn map_pairs_with(
    args: &[ColumnarValue],
    rows: usize,
    f: fn(&mut Matcher, &str, &str) -> f64,
) -> Result<ColumnarValue> {
    let mut matcher = Matcher::default();
    map_pairs(args, rows, |a, b| f(&mut matcher, a, b))
}

thread_local! {
    static MATCHER: RefCell<Matcher> = RefCell::new(Matcher::default());
}

fn with_matcher<R>(f: impl FnOnce(&mut Matcher) -> R) -> R {
    MATCHER.with(|m| f(&mut m.borrow_mut()))
}

/// Reusable state for the similarity kernels: use one per batch of pairs.
#[derive(Debug)]
pub struct Matcher {
    /// Position masks of the characters below 256; all zero between calls.
    table: [u64; 256],
    /// Position masks of the other characters (a short list: few per name).
    wide: Vec<(u32, u64)>,
    chars_a: Vec<u32>,
    chars_b: Vec<u32>,
}

impl Default for Matcher {
    fn default() -> Self {
        Self {
            table: [0; 256],
            wide: Vec::new(),
            chars_a: Vec::with_capacity(64),
            chars_b: Vec::with_capacity(64),
        }
    }
}

/// A string as up to 64 units: its bytes when ASCII, otherwise its characters.
enum Units<'a> {
    Bytes(&'a [u8]),
    Chars,
    TooLong,
}

fn units<'a>(text: &'a str, out: &mut Vec<u32>) -> Units<'a> {
    if text.is_ascii() {
        return if text.len() <= 64 {
            Units::Bytes(text.as_bytes())
        } else {
            Units::TooLong
        };
    }
    out.clear();
    for c in text.chars() {
        if out.len() == 64 {
            return Units::TooLong;
        }
        out.push(c as u32);
    }
    Units::Chars
}

/// A character unit: a byte of an ASCII string or a decoded character.
trait Unit: Copy + Eq {
    fn code(self) -> u32;
}

impl Unit for u8 {
    #[inline(always)]
    fn code(self) -> u32 {
        self as u32
    }
}

impl Unit for u32 {
    #[inline(always)]
    fn code(self) -> u32 {
        self
    }
}

impl Matcher {
    /// Jaro similarity (as `strsim::jaro`).
    pub fn jaro(&mut self, a: &str, b: &str) -> f64 {
        self.dispatch(a, b, Self::jaro_units, strsim::jaro)
    }

    /// Jaro–Winkler similarity (as `strsim::jaro_winkler`).
    pub fn jaro_winkler(&mut self, a: &str, b: &str) -> f64 {
        self.dispatch(
            a,
            b,
            |m, a, b| {
                let sim = m.jaro_units(a, b);
                if sim <= 0.7 {
                    return sim;
                }
                let prefix = match (a, b) {
                    (Slice::Bytes(a), Slice::Bytes(b)) => common_prefix(a, b),
                    (Slice::Chars(a), Slice::Chars(b)) => common_prefix(a, b),
                    _ => unreachable!("both sides are decoded alike"),
                };
                sim + 0.1 * prefix as f64 * (1.0 - sim)
            },
            strsim::jaro_winkler,
        )
    }

    /// 1 − Levenshtein distance / longer length in characters (as
    /// `strsim::normalized_levenshtein`).
    pub fn normalized_levenshtein(&mut self, a: &str, b: &str) -> f64 {
        self.dispatch(
            a,
            b,
            |m, a, b| {
                let longer = a.len().max(b.len());
                if longer == 0 {
                    return 1.0;
                }
                1.0 - m.levenshtein_units(a, b) as f64 / longer as f64
            },
            strsim::normalized_levenshtein,
        )
    }

    /// Runs `fast` on the two strings' units when both have at most 64, else `slow`.
    #[inline(always)]
    fn dispatch(
        &mut self,
        a: &str,
        b: &str,
        fast: impl Fn(&mut Self, Slice<'_>, Slice<'_>) -> f64,
        slow: impl Fn(&str, &str) -> f64,
    ) -> f64 {
        let mut chars_a = std::mem::take(&mut self.chars_a);
        let mut chars_b = std::mem::take(&mut self.chars_b);
        let result = match (units(a, &mut chars_a), units(b, &mut chars_b)) {
            (Units::TooLong, _) | (_, Units::TooLong) => slow(a, b),
            (Units::Bytes(x), Units::Bytes(y)) => fast(self, Slice::Bytes(x), Slice::Bytes(y)),
            (Units::Bytes(x), Units::Chars) => {
                chars_a.clear();
                chars_a.extend(x.iter().map(|&c| c as u32));
                fast(self, Slice::Chars(&chars_a), Slice::Chars(&chars_b))
            }
            (Units::Chars, Units::Bytes(y)) => {
                chars_b.clear();
                chars_b.extend(y.iter().map(|&c| c as u32));
                fast(self, Slice::Chars(&chars_a), Slice::Chars(&chars_b))
            }
            (Units::Chars, Units::Chars) => {
                fast(self, Slice::Chars(&chars_a), Slice::Chars(&chars_b))
            }
        };
        self.chars_a = chars_a;
        self.chars_b = chars_b;
        result
    }

    fn jaro_units(&mut self, a: Slice<'_>, b: Slice<'_>) -> f64 {
        match (a, b) {
            (Slice::Bytes(a), Slice::Bytes(b)) => self.jaro_slices(a, b),
            (Slice::Chars(a), Slice::Chars(b)) => self.jaro_slices(a, b),
            _ => unreachable!("both sides are decoded alike"),
        }
    }

    fn levenshtein_units(&mut self, a: Slice<'_>, b: Slice<'_>) -> usize {
        match (a, b) {
            (Slice::Bytes(a), Slice::Bytes(b)) => self.levenshtein_slices(a, b),
            (Slice::Chars(a), Slice::Chars(b)) => self.levenshtein_slices(a, b),
            _ => unreachable!("both sides are decoded alike"),
        }
    }

    /// Sets the position mask of each unit of `pattern` (at most 64).
    #[inline(always)]
    fn load<T: Unit>(&mut self, pattern: &[T]) {
        for (j, &c) in pattern.iter().enumerate() {
            let c = c.code();
            if c < 256 {
                self.table[c as usize] |= 1 << j;
            } else if let Some(entry) = self.wide.iter_mut().find(|e| e.0 == c) {
                entry.1 |= 1 << j;
            } else {
                self.wide.push((c, 1 << j));
            }
        }
    }

    #[inline(always)]
    fn mask<T: Unit>(&self, c: T) -> u64 {
        let c = c.code();
        if c < 256 {
            self.table[c as usize]
        } else {
            self.wide.iter().find(|e| e.0 == c).map_or(0, |e| e.1)
        }
    }

    /// Resets what [`Matcher::load`] set for `pattern`.
    #[inline(always)]
    fn unload<T: Unit>(&mut self, pattern: &[T]) {
        for &c in pattern {
            let c = c.code();
            if c < 256 {
                self.table[c as usize] = 0;
            }
        }
        self.wide.clear();
    }

    #[inline(always)]
    fn jaro_slices<T: Unit>(&mut self, a: &[T], b: &[T]) -> f64 {
        let (a_len, b_len) = (a.len(), b.len());
        if a_len == 0 && b_len == 0 {
            return 1.0;
        }
        if a_len == 0 || b_len == 0 {
            return 0.0;
        }
        if a == b {
            return 1.0;
        }
        // At most 31: both have at most 64 units.
        let range = (a_len.max(b_len) / 2).saturating_sub(1);
        // The first free position of `a[i]` in `b` within the window is the lowest bit of
        // (positions & window & !taken): strsim's greedy choice without its inner loop.
        self.load(b);
        // The window of `a[i]` is b's positions i − range ..= i + range; positions past the end
        // of `b` have no bits in the table, so only the lower bound needs clamping.
        let mut window = (1u64 << (range + 1)) - 1;
        let (mut a_flags, mut b_flags) = (0u64, 0u64);
        for (i, &x) in a.iter().enumerate() {
            let free = self.mask(x) & window & !b_flags;
            let first = free & free.wrapping_neg();
            b_flags |= first;
            a_flags |= u64::from(first != 0) << i;
            window = (window << 1) | u64::from(i < range);
        }
        let matches = a_flags.count_ones() as usize;
        self.unload(b);
        if matches == 0 {
            return 0.0;
        }
        let mut transpositions = 0usize;
        let (mut flags, mut rest) = (a_flags, b_flags);
        while flags != 0 {
            let i = flags.trailing_zeros() as usize;
            let j = rest.trailing_zeros() as usize;
            transpositions += usize::from(a[i] != b[j]);
            flags &= flags - 1;
            rest &= rest - 1;
        }
        let m = matches as f64;
        (m / a_len as f64 + m / b_len as f64 + (matches - transpositions / 2) as f64 / m) / 3.0
    }

    /// Levenshtein distance by Myers' bit-vector algorithm in Hyyrö's formulation for edit
    /// distance: one column of the matrix per character of `b`, as bits over `a` (≤ 64).
    #[inline(always)]
    fn levenshtein_slices<T: Unit>(&mut self, a: &[T], b: &[T]) -> usize {
        if a.is_empty() {
            return b.len();
        }
        self.load(a);
        let last = 1u64 << (a.len() - 1);
        let (mut pv, mut mv) = (u64::MAX, 0u64);
        let mut score = a.len();
        for &c in b {
            let eq = self.mask(c);
            let xv = eq | mv;
            let xh = ((eq & pv).wrapping_add(pv) ^ pv) | eq;
            let mut ph = mv | !(xh | pv);
            let mut mh = pv & xh;
            if ph & last != 0 {
                score += 1;
            } else if mh & last != 0 {
                score -= 1;
            }
            ph = (ph << 1) | 1;
            mh <<= 1;
            pv = mh | !(xv | ph);
            mv = ph & xv;
        }
        self.unload(a);
        score
    }
}

/// The units of one side, as handed to the kernels.
#[derive(Clone, Copy)]
enum Slice<'a> {
    Bytes(&'a [u8]),
    Chars(&'a [u32]),
}

impl Slice<'_> {
    fn len(self) -> usize {
        match self {
            Slice::Bytes(s) => s.len(),
            Slice::Chars(s) => s.len(),
        }
    }
}

/// The length of the common prefix, up to 4 (Winkler's bonus).
#[inline(always)]
fn common_prefix<T: Unit>(a: &[T], b: &[T]) -> usize {
    a.iter().zip(b).take(4).take_while(|(p, q)| p == q).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_strsim_on_random_strings() {
        // A fixed LCG: reproducible, no extra dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let ascii: Vec<char> = "abcdeAB .-".chars().collect();
        let unicode: Vec<char> = "abcé王😀 .".chars().collect();
        let mut matcher = Matcher::default();
        for round in 0..300_000 {
            // A third with non-ASCII characters, some longer than 64 (strsim), some mixed.
            let alpha_a = if round % 3 == 0 { &unicode } else { &ascii };
            let alpha_b = if round % 7 == 0 { &ascii } else { alpha_a };
            let la = next(if round % 50 == 0 { 70 } else { 20 }) as usize;
            let lb = next(if round % 40 == 0 { 66 } else { 20 }) as usize;
            let a: String = (0..la)
                .map(|_| alpha_a[next(alpha_a.len() as u64) as usize])
                .collect();
            let b: String = (0..lb)
                .map(|_| alpha_b[next(alpha_b.len() as u64) as usize])
                .collect();
            assert_eq!(
                matcher.jaro(&a, &b),
                strsim::jaro(&a, &b),
                "jaro({a:?}, {b:?})"
            );
            assert_eq!(
                matcher.jaro_winkler(&a, &b),
                strsim::jaro_winkler(&a, &b),
                "jw({a:?}, {b:?})"
            );
            assert_eq!(
                matcher.normalized_levenshtein(&a, &b),
                strsim::normalized_levenshtein(&a, &b),
                "levenshtein({a:?}, {b:?})"
            );
        }
        let long = "a".repeat(64);
        assert_eq!(jaro(&long, &long[1..]), strsim::jaro(&long, &long[1..]));
        assert_eq!(
            normalized_levenshtein(&long, &"b".repeat(64)),
            strsim::normalized_levenshtein(&long, &"b".repeat(64))
        );
        assert_eq!(
            jaro_winkler("Zoë", "Zoe"),
            strsim::jaro_winkler("Zoë", "Zoe")
        );
    }

    #[test]
    fn reference_values() {
        assert_eq!(normalized_levenshtein("kitten", "sitting"), 1.0 - 3.0 / 7.0);
        assert_eq!(normalized_levenshtein("", ""), 1.0);
        assert_eq!(normalized_levenshtein("", "abc"), 0.0);
        assert_eq!(normalized_levenshtein("Zoë", "Zoe"), 1.0 - 1.0 / 3.0);
        assert!((jaro_winkler("MARTHA", "MARHTA") - 0.9611).abs() < 1e-4);
        assert!((jaro_winkler("DIXON", "DICKSONX") - 0.8133).abs() < 1e-4);
        // Characters beyond Latin-1 (the side list) and the table stay clean between pairs.
        assert_eq!(jaro("王小明", "王小明"), 1.0);
        assert_eq!(jaro("abc", "xyz"), 0.0);
    }
}
