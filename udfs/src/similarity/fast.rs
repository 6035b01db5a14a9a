//! Jaro and Jaro–Winkler on ASCII strings of up to 64 bytes (names, emails, most identifiers)
//! with bit-mask match flags and no allocation; other strings go to `strsim`. Results equal
//! `strsim`'s exactly (checked on random strings below).

/// Jaro similarity (as `strsim::jaro`).
pub fn jaro(a: &str, b: &str) -> f64 {
    with_slices(a, b, jaro_slices, strsim::jaro)
}

/// Jaro–Winkler similarity (as `strsim::jaro_winkler`: prefix bonus up to 4 characters,
/// scaling 0.1, applied above 0.7).
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    with_slices(
        a,
        b,
        |x, y| {
            let sim = jaro_slices(x, y);
            if sim > 0.7 {
                let prefix = x.iter().zip(y).take(4).take_while(|(p, q)| p == q).count();
                sim + 0.1 * prefix as f64 * (1.0 - sim)
            } else {
                sim
            }
        },
        strsim::jaro_winkler,
    )
}

/// Runs `fast` on the bytes (ASCII) or on the characters (up to 64 each, decoded on the stack);
/// longer strings go to `slow`.
#[inline]
fn with_slices(
    a: &str,
    b: &str,
    fast: impl Fn(&[u32], &[u32]) -> f64,
    slow: impl Fn(&str, &str) -> f64,
) -> f64 {
    let mut ca = [0u32; 64];
    let mut cb = [0u32; 64];
    let (Some(la), Some(lb)) = (decode(a, &mut ca), decode(b, &mut cb)) else {
        return slow(a, b);
    };
    fast(&ca[..la], &cb[..lb])
}

#[inline]
fn decode(text: &str, out: &mut [u32; 64]) -> Option<usize> {
    if text.is_ascii() {
        if text.len() > 64 {
            return None;
        }
        for (slot, byte) in out.iter_mut().zip(text.bytes()) {
            *slot = byte as u32;
        }
        return Some(text.len());
    }
    let mut n = 0;
    for c in text.chars() {
        if n == 64 {
            return None;
        }
        out[n] = c as u32;
        n += 1;
    }
    Some(n)
}

#[inline]
fn jaro_slices(a: &[u32], b: &[u32]) -> f64 {
    let (a_len, b_len) = (a.len(), b.len());
    if a_len == 0 && b_len == 0 {
        return 1.0;
    }
    if a_len == 0 || b_len == 0 {
        return 0.0;
    }
    let range = (a_len.max(b_len) / 2).saturating_sub(1);
    let (mut a_flags, mut b_flags) = (0u64, 0u64);
    let mut matches = 0usize;
    if a.iter().chain(b).all(|&c| c < 128) {
        // Bit-parallel: the positions of each character in `b` as a mask; the first free
        // position within the window is the lowest bit of (mask & window & !taken) — the same
        // greedy choice as the loop below, without the inner loop.
        let mut positions = [0u64; 128];
        for (j, &c) in b.iter().enumerate() {
            positions[c as usize] |= 1 << j;
        }
        for (i, &x) in a.iter().enumerate() {
            let lo = i.saturating_sub(range);
            let hi = (i + range + 1).min(b_len);
            if lo >= hi {
                continue;
            }
            let free = positions[x as usize] & window_mask(lo, hi) & !b_flags;
            if free != 0 {
                a_flags |= 1 << i;
                b_flags |= free & free.wrapping_neg();
                matches += 1;
            }
        }
    } else {
        matches = greedy_matches(a, b, range, &mut a_flags, &mut b_flags);
    }
    if matches == 0 {
        return 0.0;
    }
    transpositions_and_score(a, b, a_flags, b_flags, matches)
}

/// Bits `lo..hi` set.
#[inline]
fn window_mask(lo: usize, hi: usize) -> u64 {
    let upto = |n: usize| if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    upto(hi) & !upto(lo)
}

#[inline]
fn greedy_matches(
    a: &[u32],
    b: &[u32],
    range: usize,
    a_flags: &mut u64,
    b_flags: &mut u64,
) -> usize {
    let b_len = b.len();
    let mut matches = 0;
    for (i, &x) in a.iter().enumerate() {
        let lo = i.saturating_sub(range);
        let hi = (i + range + 1).min(b_len);
        for (j, &y) in b.iter().enumerate().take(hi).skip(lo) {
            if *b_flags & (1 << j) == 0 && y == x {
                *a_flags |= 1 << i;
                *b_flags |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    matches
}

#[inline]
fn transpositions_and_score(
    a: &[u32],
    b: &[u32],
    a_flags: u64,
    b_flags: u64,
    matches: usize,
) -> f64 {
    let (a_len, b_len) = (a.len(), b.len());
    let mut transpositions = 0usize;
    let mut rest = b_flags;
    let mut flags = a_flags;
    while flags != 0 {
        let i = flags.trailing_zeros() as usize;
        let j = rest.trailing_zeros() as usize;
        if a[i] != b[j] {
            transpositions += 1;
        }
        flags &= flags - 1;
        rest &= rest - 1;
    }
    let m = matches as f64;
    (m / a_len as f64 + m / b_len as f64 + (matches - transpositions / 2) as f64 / m) / 3.0
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
        for round in 0..300_000 {
            // A third with non-ASCII characters (the loop path), some longer than 64 (strsim).
            let alphabet = if round % 3 == 0 { &unicode } else { &ascii };
            let n = alphabet.len() as u64;
            let la = next(if round % 50 == 0 { 70 } else { 20 }) as usize;
            let lb = next(20) as usize;
            let a: String = (0..la).map(|_| alphabet[next(n) as usize]).collect();
            let b: String = (0..lb).map(|_| alphabet[next(n) as usize]).collect();
            assert_eq!(jaro(&a, &b), strsim::jaro(&a, &b), "jaro({a:?}, {b:?})");
            assert_eq!(
                jaro_winkler(&a, &b),
                strsim::jaro_winkler(&a, &b),
                "jw({a:?}, {b:?})"
            );
        }
        let long = "a".repeat(64);
        assert_eq!(jaro(&long, &long[1..]), strsim::jaro(&long, &long[1..]));
        assert_eq!(
            jaro_winkler("Zoë", "Zoe"),
            strsim::jaro_winkler("Zoë", "Zoe")
        );
    }
}
