//! Values numbered once per accumulator, and per group the ids seen with their counts: what
//! `most_frequent` and `distinct_values` keep. A customer's few values are a short list of
//! integers, searched without reading the values (one allocation per distinct value, not per
//! group and value).

use std::sync::Arc;

use datafusion::common::HashMap;
use datafusion::error::{DataFusionError, Result};

/// Bytes held per distinct value beyond its row (two pointers, an id, a table slot), for `size`.
const VALUE: usize = 48;
/// Bytes held per counted (group, value) entry, for `size`.
const ENTRY: usize = 16;
/// Values counted in a list before a group switches to a hash table.
const FEW: usize = 16;

/// Every distinct value the accumulator has seen, as its row, numbered once.
#[derive(Debug, Default)]
pub(super) struct Values {
    ids: HashMap<Arc<[u8]>, u32>,
    rows: Vec<Arc<[u8]>>,
}

impl Values {
    /// The id of `row`; returns the bytes newly held with it.
    pub(super) fn id(&mut self, row: &[u8]) -> Result<(u32, usize)> {
        if let Some(&id) = self.ids.get(row) {
            return Ok((id, 0));
        }
        let id = u32::try_from(self.rows.len()).map_err(|_| {
            DataFusionError::ResourcesExhausted(
                "more than 2^32 distinct values in one aggregate".into(),
            )
        })?;
        let row: Arc<[u8]> = row.into();
        self.rows.push(row.clone());
        let bytes = row.len() + VALUE;
        self.ids.insert(row, id);
        Ok((id, bytes))
    }

    pub(super) fn row(&self, id: u32) -> &[u8] {
        &self.rows[id as usize]
    }

    /// Forgets every value (once no group refers to one, e.g. after all groups were emitted
    /// before a spill); returns the bytes freed.
    pub(super) fn clear(&mut self) -> usize {
        let bytes = self.rows.iter().map(|r| r.len() + VALUE).sum();
        self.ids = HashMap::default();
        self.rows = Vec::new();
        bytes
    }
}

/// The counts of one group's values, by value id.
#[derive(Debug, Default)]
pub(super) struct Tally {
    few: Vec<(u32, i64)>,
    many: HashMap<u32, i64>,
}

impl Tally {
    /// Adds `n` to the count of value `id`; returns the bytes newly held.
    pub(super) fn add(&mut self, id: u32, n: i64) -> usize {
        if self.many.is_empty() {
            if let Some(entry) = self.few.iter_mut().find(|e| e.0 == id) {
                entry.1 += n;
                return 0;
            }
            if self.few.len() < FEW {
                self.few.push((id, n));
                return ENTRY;
            }
            self.many.extend(self.few.drain(..));
        }
        match self.many.get_mut(&id) {
            Some(count) => {
                *count += n;
                0
            }
            None => {
                self.many.insert(id, n);
                ENTRY
            }
        }
    }

    pub(super) fn entries(&self) -> impl Iterator<Item = (u32, i64)> + '_ {
        let few = self.few.iter().copied();
        few.chain(self.many.iter().map(|(&id, &n)| (id, n)))
    }

    /// The highest count; on equal counts the smallest value (row order is value order).
    pub(super) fn mode<'a>(&self, values: &'a Values) -> Option<&'a [u8]> {
        self.entries()
            .map(|(id, n)| (values.row(id), n))
            .max_by(|(ra, na), (rb, nb)| na.cmp(nb).then_with(|| rb.cmp(ra)))
            .map(|(row, _)| row)
    }

    pub(super) fn bytes(&self) -> usize {
        (self.few.len() + self.many.len()) * ENTRY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_numbered_once_and_forgotten_whole() {
        let mut values = Values::default();
        let (a, held_a) = values.id(b"paris").unwrap();
        let (b, held_b) = values.id(b"lyon").unwrap();
        assert_eq!(values.id(b"paris").unwrap(), (a, 0));
        assert_ne!(a, b);
        assert_eq!(values.row(b), b"lyon");
        assert_eq!(values.clear(), held_a + held_b);
        assert_eq!(values.id(b"lyon").unwrap().0, 0);
    }

    #[test]
    fn a_tally_counts_past_its_short_list() {
        let mut tally = Tally::default();
        for id in 0..40u32 {
            tally.add(id, i64::from(id % 3));
        }
        tally.add(7, 10);
        let mut values = Values::default();
        for id in 0..40u32 {
            values.id(format!("{id:02}").as_bytes()).unwrap();
        }
        assert_eq!(tally.entries().count(), 40);
        assert_eq!(tally.bytes(), 40 * ENTRY);
        assert_eq!(tally.mode(&values), Some(&b"07"[..]));
    }
}
