//! `distinct_values(value)`: every distinct non-NULL value, sorted — a customer's emails,
//! sources or devices as one list.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, GroupsAccumulator, Signature, Volatility};
use datafusion_macros::user_doc;

use super::aggregate::{Groups, Included, Survivor, list_rows, rows_list};
use super::tally::{Tally, Values};

/// Each group's distinct values as ids of the accumulator's [`Values`] (their counts unused),
/// sorted by value when the group is evaluated: row order is value order.
#[derive(Debug)]
struct Distinct {
    value_type: DataType,
    converter: RowConverter,
    values: Values,
    sets: Vec<Tally>,
    bytes: usize,
}

impl Distinct {
    fn new(value_type: DataType) -> Result<Self> {
        Ok(Self {
            converter: RowConverter::new(vec![SortField::new(value_type.clone())])?,
            value_type,
            values: Values::default(),
            sets: Vec::new(),
            bytes: 0,
        })
    }

    fn insert(&mut self, group: usize, row: &[u8]) -> Result<()> {
        let (id, new) = self.values.id(row)?;
        self.bytes += new + self.sets[group].add(id, 1);
        Ok(())
    }
}

impl Survivor for Distinct {
    fn empty(&self) -> Result<Self> {
        Self::new(self.value_type.clone())
    }

    fn resize(&mut self, total: usize) {
        if self.sets.len() < total {
            self.sets.resize_with(total, Tally::default);
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
            for (&group, range) in groups.iter().zip(ranges) {
                for row in range {
                    self.insert(group, rows.row(row).data())?;
                }
            }
            return Ok(());
        }
        let included = Included::new(&[&columns[0]], filter);
        let rows = self.converter.convert_columns(&columns[..1])?;
        for (i, &group) in groups.iter().enumerate() {
            if included.contains(i) {
                self.insert(group, rows.row(i).data())?;
            }
        }
        Ok(())
    }

    fn evaluate(&self, range: Range<usize>) -> Result<ArrayRef> {
        let groups = self.sets[range].iter().map(|set| {
            let mut rows: Vec<&[u8]> = set.entries().map(|(id, _)| self.values.row(id)).collect();
            rows.sort_unstable();
            rows
        });
        Ok(Arc::new(rows_list(
            &self.converter,
            &self.value_type,
            groups,
        )?))
    }

    fn state(&self, range: Range<usize>) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(range)?])
    }

    fn drop_first(&mut self, n: usize) {
        for set in self.sets.drain(..n) {
            self.bytes -= set.bytes();
        }
        if self.sets.is_empty() {
            self.bytes -= self.values.clear();
        }
    }

    fn groups(&self) -> usize {
        self.sets.len()
    }

    fn size(&self) -> usize {
        self.bytes + self.sets.capacity() * std::mem::size_of::<Tally>() + self.converter.size()
    }
}

/// The aggregate `distinct_values` (see its SQL documentation).
#[user_doc(
    doc_section(label = "Survivorship aggregates"),
    description = "Every distinct non-NULL value, sorted ascending, as a list (a golden \
    record's emails, sources or device ids); NULL when there is none.",
    syntax_example = "distinct_values(value)",
    sql_example = r#"```sql
> select distinct_values(email) from (values ('b@x.com'), ('a@x.com'), (NULL), ('b@x.com')) t(email);
[a@x.com, b@x.com]
```"#,
    argument(name = "value", description = "The attribute (any type).")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DistinctValues {
    signature: Signature,
}

impl Default for DistinctValues {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

fn list_of(value: &DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(value.clone(), true)))
}

impl datafusion::logical_expr::AggregateUDFImpl for DistinctValues {
    fn name(&self) -> &str {
        "distinct_values"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_of(&arg_types[0]))
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Groups(Distinct::new(
            args.expr_fields[0].data_type().clone(),
        )?)))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups(Distinct::new(
            args.expr_fields[0].data_type().clone(),
        )?)))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            "values",
            list_of(args.input_fields[0].data_type()),
            true,
        ))])
    }
    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.doc()
    }
}
