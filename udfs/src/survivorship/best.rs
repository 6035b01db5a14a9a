//! `latest_value`, `earliest_value`, `priority_value`, `longest_value`: keep the value whose key
//! is best (a timestamp, a source priority, a length).

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, new_null_array};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, GroupsAccumulator, Signature, Volatility};
use datafusion_macros::user_doc;

use super::aggregate::{Groups, Included, Survivor, char_lengths, decode};

/// How the key decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rule {
    /// The largest key (latest timestamp) wins.
    Max,
    /// The smallest key (earliest timestamp, best priority) wins.
    Min,
    /// The longest string wins (the key is its length in characters).
    Longest,
}

/// The best candidate of each group as the row `(key, value)`, encoded so that the better
/// candidate is the smaller row: the key descending for [`Rule::Max`] and [`Rule::Longest`],
/// ascending for [`Rule::Min`], then the value ascending (ties: the smallest value).
#[derive(Debug)]
struct Best {
    rule: Rule,
    value_type: DataType,
    key_type: DataType,
    converter: RowConverter,
    /// The row of a NULL key and value: what a group without a candidate yields.
    none: OwnedRow,
    best: Vec<Option<OwnedRow>>,
    bytes: usize,
}

impl Best {
    fn new(rule: Rule, value_type: DataType, key_type: DataType) -> Result<Self> {
        let key_order = SortOptions {
            descending: rule != Rule::Min,
            nulls_first: false,
        };
        let converter = RowConverter::new(vec![
            SortField::new_with_options(key_type.clone(), key_order),
            SortField::new(value_type.clone()),
        ])?;
        let none = converter
            .convert_columns(&[new_null_array(&key_type, 1), new_null_array(&value_type, 1)])?
            .row(0)
            .owned();
        Ok(Self {
            rule,
            value_type,
            key_type,
            converter,
            none,
            best: Vec::new(),
            bytes: 0,
        })
    }

    fn columns(&self, range: Range<usize>) -> Result<Vec<ArrayRef>> {
        let rows = self.best[range]
            .iter()
            .map(|best| best.as_ref().unwrap_or(&self.none).row());
        decode(&self.converter, rows, &[&self.key_type, &self.value_type])
    }
}

impl Survivor for Best {
    fn empty(&self) -> Result<Self> {
        Self::new(self.rule, self.value_type.clone(), self.key_type.clone())
    }

    fn resize(&mut self, total: usize) {
        if self.best.len() < total {
            self.best.resize(total, None);
        }
    }

    fn add(
        &mut self,
        columns: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        merge: bool,
    ) -> Result<()> {
        let values = &columns[0];
        let keys = if self.rule == Rule::Longest && !merge {
            char_lengths(values)?
        } else {
            columns[1].clone()
        };
        let included = Included::new(&[values, &keys], filter);
        let rows = self.converter.convert_columns(&[keys, values.clone()])?;
        for (i, &group) in groups.iter().enumerate() {
            if !included.contains(i) {
                continue;
            }
            let row = rows.row(i);
            let slot = &mut self.best[group];
            if slot.as_ref().is_none_or(|best| row < best.row()) {
                self.bytes += row.data().len();
                if let Some(old) = slot.replace(row.owned()) {
                    self.bytes -= old.as_ref().len();
                }
            }
        }
        Ok(())
    }

    fn evaluate(&self, range: Range<usize>) -> Result<ArrayRef> {
        Ok(self.columns(range)?.swap_remove(1))
    }

    fn state(&self, range: Range<usize>) -> Result<Vec<ArrayRef>> {
        let mut columns = self.columns(range)?;
        columns.swap(0, 1);
        Ok(columns)
    }

    fn drop_first(&mut self, n: usize) {
        for old in self.best.drain(..n).flatten() {
            self.bytes -= old.as_ref().len();
        }
    }

    fn groups(&self) -> usize {
        self.best.len()
    }

    fn size(&self) -> usize {
        self.bytes
            + self.best.capacity() * std::mem::size_of::<Option<OwnedRow>>()
            + self.converter.size()
    }
}

fn best(args: &AccumulatorArgs, rule: Rule) -> Result<Best> {
    let key_type = if rule == Rule::Longest {
        DataType::Int64
    } else {
        args.expr_fields[1].data_type().clone()
    };
    Best::new(rule, args.return_type().clone(), key_type)
}

macro_rules! best_aggregate {
    ($(#[$meta:meta])* $name:ident, $sql:literal, $rule:expr, $args:literal) => {
        $(#[$meta])*
        #[doc = concat!("The aggregate `", $sql, "` (see its SQL documentation).")]
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            signature: Signature,
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    signature: Signature::any($args, Volatility::Immutable),
                }
            }
        }

        impl datafusion::logical_expr::AggregateUDFImpl for $name {
            fn name(&self) -> &str {
                $sql
            }
            fn signature(&self) -> &Signature {
                &self.signature
            }
            fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
                Ok(arg_types[0].clone())
            }
            fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
                Ok(Box::new(Groups(best(&args, $rule)?)))
            }
            fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
                true
            }
            fn create_groups_accumulator(
                &self,
                args: AccumulatorArgs,
            ) -> Result<Box<dyn GroupsAccumulator>> {
                Ok(Box::new(Groups(best(&args, $rule)?)))
            }
            fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
                let key_type = if $rule == Rule::Longest {
                    DataType::Int64
                } else {
                    args.input_fields[1].data_type().clone()
                };
                Ok(vec![
                    Arc::new(Field::new("value", args.return_field.data_type().clone(), true)),
                    Arc::new(Field::new("key", key_type, true)),
                ])
            }
            fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
                self.doc()
            }
        }
    };
}

best_aggregate!(
    #[user_doc(
        doc_section(label = "Survivorship aggregates"),
        description = "The non-NULL value with the latest timestamp (most recent wins); on equal \
        timestamps the smallest value.",
        syntax_example = "latest_value(value, ts)",
        sql_example = r#"```sql
> select latest_value(email, updated_at) from (values ('a@x.com', 1), ('b@x.com', 2), (NULL, 3)) t(email, updated_at);
b@x.com
```"#,
        argument(name = "value", description = "The attribute."),
        argument(
            name = "ts",
            description = "When the value was recorded (any ordered type)."
        )
    )]
    LatestValue,
    "latest_value",
    Rule::Max,
    2
);

best_aggregate!(
    #[user_doc(
        doc_section(label = "Survivorship aggregates"),
        description = "The non-NULL value with the earliest timestamp (first recorded wins); on \
        equal timestamps the smallest value.",
        syntax_example = "earliest_value(value, ts)",
        sql_example = r#"```sql
> select earliest_value(city, created_at) from (values ('Paris', 2), ('Lyon', 1)) t(city, created_at);
Lyon
```"#,
        argument(name = "value", description = "The attribute."),
        argument(
            name = "ts",
            description = "When the value was recorded (any ordered type)."
        )
    )]
    EarliestValue,
    "earliest_value",
    Rule::Min,
    2
);

best_aggregate!(
    #[user_doc(
        doc_section(label = "Survivorship aggregates"),
        description = "The first non-NULL value by source priority: the value whose priority is \
        lowest (1 before 2); on equal priority the smallest value.",
        syntax_example = "priority_value(value, priority)",
        sql_example = r#"```sql
> select priority_value(phone, p) from (values ('+1555', 2), (NULL, 1), ('+1666', 3)) t(phone, p);
+1555
```"#,
        argument(name = "value", description = "The attribute."),
        argument(name = "priority", description = "The source's rank: lower wins.")
    )]
    PriorityValue,
    "priority_value",
    Rule::Min,
    2
);

best_aggregate!(
    #[user_doc(
        doc_section(label = "Survivorship aggregates"),
        description = "The longest non-NULL string (in characters), e.g. the fullest address; on \
        equal length the smallest value.",
        syntax_example = "longest_value(value)",
        sql_example = r#"```sql
> select longest_value(street) from (values ('1 Main St'), ('1 Main Street')) t(street);
1 Main Street
```"#,
        argument(name = "value", description = "A string attribute.")
    )]
    LongestValue,
    "longest_value",
    Rule::Longest,
    1
);

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, Int64Array, StringArray};
    use datafusion::logical_expr::EmitTo;

    use super::*;

    #[test]
    fn emits_the_first_groups_and_renumbers_the_rest() {
        let mut acc = Groups(Best::new(Rule::Max, DataType::Utf8, DataType::Int64).unwrap());
        let values: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some("b"),
            Some("c"),
            None,
            Some("d"),
        ]));
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 1, 9, 5]));
        GroupsAccumulator::update_batch(&mut acc, &[values, keys], &[0, 0, 1, 1, 2], None, 3)
            .unwrap();
        let held = GroupsAccumulator::size(&acc);
        let first = GroupsAccumulator::evaluate(&mut acc, EmitTo::First(1)).unwrap();
        assert_eq!(first.as_string::<i32>().value(0), "b");
        assert!(GroupsAccumulator::size(&acc) < held);
        // Groups 1 and 2 are now 0 and 1; a later batch adds to them under their new numbers.
        let values: ArrayRef = Arc::new(StringArray::from(vec!["e"]));
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![0]));
        GroupsAccumulator::update_batch(&mut acc, &[values, keys], &[0], None, 2).unwrap();
        let state = GroupsAccumulator::state(&mut acc, EmitTo::All).unwrap();
        let rest: Vec<_> = state[0].as_string::<i32>().iter().collect();
        assert_eq!(rest, vec![Some("c"), Some("d")]);
        assert_eq!(
            state[1]
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(0),
            1
        );
    }
}
