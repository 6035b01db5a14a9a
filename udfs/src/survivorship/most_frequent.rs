//! `most_frequent(value)`: the mode.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, GroupsAccumulator, Signature, Volatility};
use datafusion_macros::user_doc;

use super::aggregate::{Groups, Included, Survivor, decode, list_rows, rows_list};
use super::tally::{Tally, Values};

#[derive(Debug)]
struct Mode {
    value_type: DataType,
    converter: RowConverter,
    values: Values,
    tallies: Vec<Tally>,
    bytes: usize,
}

impl Mode {
    fn new(value_type: DataType) -> Result<Self> {
        Ok(Self {
            converter: RowConverter::new(vec![SortField::new(value_type.clone())])?,
            value_type,
            values: Values::default(),
            tallies: Vec::new(),
            bytes: 0,
        })
    }

    /// Counts `n` more of `row` in `group`.
    fn count(&mut self, group: usize, row: &[u8], n: i64) -> Result<()> {
        let (id, new) = self.values.id(row)?;
        self.bytes += new + self.tallies[group].add(id, n);
        Ok(())
    }
}

impl Survivor for Mode {
    fn empty(&self) -> Result<Self> {
        Self::new(self.value_type.clone())
    }

    fn resize(&mut self, total: usize) {
        if self.tallies.len() < total {
            self.tallies.resize_with(total, Tally::default);
        }
    }

    fn add(
        &mut self,
        columns: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        merge: bool,
    ) -> Result<()> {
        if merge {
            let (rows, ranges) = list_rows(&self.converter, &columns[0])?;
            let counts = columns[1].as_list::<i32>();
            let count_values = counts.values().as_primitive::<Int64Type>();
            for (i, (&group, range)) in groups.iter().zip(ranges).enumerate() {
                let first_count = counts.value_offsets()[i] as usize;
                for (k, row) in range.enumerate() {
                    let n = count_values.value(first_count + k);
                    self.count(group, rows.row(row).data(), n)?;
                }
            }
            return Ok(());
        }
        let included = Included::new(&[&columns[0]], filter);
        let rows = self.converter.convert_columns(&columns[..1])?;
        for (i, &group) in groups.iter().enumerate() {
            if included.contains(i) {
                self.count(group, rows.row(i).data(), 1)?;
            }
        }
        Ok(())
    }

    fn evaluate(&self, range: Range<usize>) -> Result<ArrayRef> {
        let parser = self.converter.parser();
        let none = self
            .converter
            .convert_columns(&[new_null_array(&self.value_type, 1)])?;
        let rows = self.tallies[range]
            .iter()
            .map(|tally| match tally.mode(&self.values) {
                Some(row) => parser.parse(row),
                None => none.row(0),
            });
        Ok(decode(&self.converter, rows, &[&self.value_type])?.swap_remove(0))
    }

    fn state(&self, range: Range<usize>) -> Result<Vec<ArrayRef>> {
        let tallies = &self.tallies[range];
        let values = rows_list(
            &self.converter,
            &self.value_type,
            tallies
                .iter()
                .map(|t| t.entries().map(|(id, _)| self.values.row(id)).collect()),
        )?;
        let counts: Int64Array = tallies
            .iter()
            .flat_map(|t| t.entries().map(|(_, n)| n))
            .collect();
        let counts = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Int64, true)),
            values.offsets().clone(),
            Arc::new(counts),
            values.nulls().cloned(),
        );
        Ok(vec![Arc::new(values), Arc::new(counts)])
    }

    fn drop_first(&mut self, n: usize) {
        for tally in self.tallies.drain(..n) {
            self.bytes -= tally.bytes();
        }
        if self.tallies.is_empty() {
            self.bytes -= self.values.clear();
        }
    }

    fn groups(&self) -> usize {
        self.tallies.len()
    }

    fn size(&self) -> usize {
        self.bytes + self.tallies.capacity() * std::mem::size_of::<Tally>() + self.converter.size()
    }
}

/// The aggregate `most_frequent` (see its SQL documentation).
#[user_doc(
    doc_section(label = "Survivorship aggregates"),
    description = "The most frequent non-NULL value (the mode); on equal counts the smallest \
    value.",
    syntax_example = "most_frequent(value)",
    sql_example = r#"```sql
> select most_frequent(city) from (values ('Paris'), ('Lyon'), ('Paris'), (NULL)) t(city);
Paris
```"#,
    argument(name = "value", description = "The attribute.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MostFrequent {
    signature: Signature,
}

impl Default for MostFrequent {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl datafusion::logical_expr::AggregateUDFImpl for MostFrequent {
    fn name(&self) -> &str {
        "most_frequent"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Groups(Mode::new(args.return_type().clone())?)))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups(Mode::new(args.return_type().clone())?)))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let value = args.return_field.data_type().clone();
        Ok(vec![
            Arc::new(Field::new(
                "values",
                DataType::List(Arc::new(Field::new_list_field(value, true))),
                true,
            )),
            Arc::new(Field::new(
                "counts",
                DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
                true,
            )),
        ])
    }
    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.doc()
    }
}
