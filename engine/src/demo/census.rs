//! Names by their real frequencies: the US Census 1990 first-name and surname files (public
//! domain; the copies the PyPI package `names` ships), every first name and the 20,000 most
//! common surnames. The demo draws from them beside its per-country lists, so that the share
//! of people sharing a full name with someone else grows with the population as it does in a
//! real customer base (a few hand-written lists made nearly every name a shared one).

use std::sync::LazyLock;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::vocab::FirstName;

const FILE: &str = include_str!("census_names.txt");

/// Names with cumulative weights, drawn by binary search.
#[derive(Debug, Default)]
struct Weighted {
    names: Vec<&'static str>,
    cumulative: Vec<f64>,
}

impl Weighted {
    fn push(&mut self, name: &'static str, percent: f64) {
        // The census rounds the rarest names to 0.000%: they still occur.
        let total = self.cumulative.last().copied().unwrap_or(0.0) + percent.max(0.0005);
        self.names.push(name);
        self.cumulative.push(total);
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> &'static str {
        let total = *self.cumulative.last().expect("names loaded");
        let u = rng.random::<f64>() * total;
        let i = self.cumulative.partition_point(|&c| c < u);
        self.names[i.min(self.names.len() - 1)]
    }
}

#[derive(Debug, Default)]
struct Census {
    male: Weighted,
    female: Weighted,
    last: Weighted,
}

static CENSUS: LazyLock<Census> = LazyLock::new(|| {
    let mut census = Census::default();
    let mut section = "";
    for line in FILE.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('@') {
            section = name;
            continue;
        }
        let (name, percent) = line.split_once(' ').expect("`name percent` lines");
        let percent: f64 = percent.parse().expect("a percentage");
        match section {
            "male" => census.male.push(name, percent),
            "female" => census.female.push(name, percent),
            _ => census.last.push(name, percent),
        }
    }
    census
});

/// A first name by its frequency (half the people of each gender), with no diminutives.
pub fn first_name(rng: &mut ChaCha8Rng) -> FirstName {
    if rng.random::<bool>() {
        (CENSUS.male.draw(rng), 'M', &[])
    } else {
        (CENSUS.female.draw(rng), 'F', &[])
    }
}

/// A surname by its frequency.
pub fn last_name(rng: &mut ChaCha8Rng) -> &'static str {
    CENSUS.last.draw(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn names_follow_their_frequencies() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 200_000;
        let smiths = (0..n).filter(|_| last_name(&mut rng) == "Smith").count();
        // Smith is 1.006% of the census's people; the 20,000 surnames kept hold about 80% of
        // them, so 1.25% of the drawn ones.
        let share = smiths as f64 / n as f64;
        assert!((0.011..0.014).contains(&share), "{share}");
        let distinct: std::collections::HashSet<_> = (0..n).map(|_| last_name(&mut rng)).collect();
        assert!(distinct.len() > 10_000, "a long tail: {}", distinct.len());
        assert_eq!(CENSUS.male.names.len(), 1219);
    }
}
