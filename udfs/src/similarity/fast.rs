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

/// Unrestricted Damerau–Levenshtein distance (as `strsim::damerau_levenshtein`). ASCII strings
/// are compared as bytes, after their common prefix and suffix (which do not change the
/// distance) are set aside, with Zhao and Sahni's linear-space algorithm on buffers reused by
/// the thread: an email pair sharing `@gmail.com` computes a quarter of the cells, a typo pair
/// a handful. Other strings go to `strsim`.
pub fn damerau_levenshtein(a: &str, b: &str) -> usize {
    if !a.is_ascii() || !b.is_ascii() {
        return strsim::damerau_levenshtein(a, b);
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    if a.is_empty() || b.is_empty() {
        return a.len().max(b.len());
    }
    DL_ROWS.with(|rows| zhao_sahni(a, b, &mut rows.borrow_mut()))
}

thread_local! {
    static DL_ROWS: RefCell<[Vec<isize>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// Zhao and Sahni's linear-space Damerau–Levenshtein over bytes below 128 (strsim's
/// algorithm, with an array for the last row of each byte).
fn zhao_sahni(s1: &[u8], s2: &[u8], rows: &mut [Vec<isize>; 3]) -> usize {
    let (len1, len2) = (s1.len(), s2.len());
    let max_val = len1.max(len2) as isize + 1;
    let size = len2 + 2;
    let [fr, r1, r] = rows;
    fr.clear();
    fr.resize(size, max_val);
    r1.clear();
    r1.resize(size, max_val);
    r.clear();
    r.push(max_val);
    r.extend(0..(size - 1) as isize);
    let mut last_row_id = [-1isize; 128];
    for (i, &ch1) in s1.iter().enumerate().map(|(i, c)| (i + 1, c)) {
        std::mem::swap(r, r1);
        let mut last_col_id: isize = -1;
        let mut last_i2l1 = r[1];
        r[1] = i as isize;
        let mut t = max_val;
        for (j, &ch2) in s2.iter().enumerate().map(|(j, c)| (j + 1, c)) {
            let diag = r1[j] + isize::from(ch1 != ch2);
            let left = r[j] + 1;
            let up = r1[j + 1] + 1;
            let mut temp = diag.min(left).min(up);
            if ch1 == ch2 {
                last_col_id = j as isize;
                fr[j + 1] = r1[j - 1];
                t = last_i2l1;
            } else {
                let k = last_row_id[ch2 as usize];
                let l = last_col_id;
                if j as isize - l == 1 {
                    temp = temp.min(fr[j + 1] + (i as isize - k));
                } else if i as isize - k == 1 {
                    temp = temp.min(t + (j as isize - l));
                }
            }
            last_i2l1 = r[j + 1];
            r[j + 1] = temp;
        }
        last_row_id[ch1 as usize] = i as isize;
    }
    r[len2 + 1] as usize
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
                damerau_levenshtein(&a, &b),
                strsim::damerau_levenshtein(&a, &b),
                "damerau_levenshtein({a:?}, {b:?})"
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
    fn damerau_levenshtein_equals_strsim_on_every_short_string_and_around_shared_affixes() {
        // Every string of up to 5 letters over three letters (repeats and transpositions
        // everywhere), against every other, bare and inside a shared prefix and suffix.
        let mut words = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..5 {
            frontier = frontier
                .iter()
                .flat_map(|w| ["a", "b", "c"].map(|c| format!("{w}{c}")))
                .collect();
            words.extend(frontier.iter().cloned());
        }
        for a in &words {
            for b in &words {
                assert_eq!(
                    damerau_levenshtein(a, b),
                    strsim::damerau_levenshtein(a, b),
                    "({a:?}, {b:?})"
                );
            }
        }
        for (a, b) in words.iter().zip(words.iter().rev()).step_by(7) {
            for (p, s) in [("ab", "@c.a"), ("ba", "ab"), ("c", "")] {
                let (x, y) = (format!("{p}{a}{s}"), format!("{p}{b}{s}"));
                assert_eq!(
                    damerau_levenshtein(&x, &y),
                    strsim::damerau_levenshtein(&x, &y),
                    "({x:?}, {y:?})"
                );
            }
        }
        assert_eq!(damerau_levenshtein("ca", "abc"), 2);
        assert_eq!(damerau_levenshtein("jöhn", "john"), 1);
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
