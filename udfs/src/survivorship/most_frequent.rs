//! `most_frequent(value)`: the mode.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, Signature, Volatility};
use datafusion_macros::user_doc;

#[derive(Debug)]
struct Mode {
    data_type: DataType,
    counts: HashMap<ScalarValue, i64>,
}

impl Mode {
    fn add(&mut self, values: &ArrayRef, counts: Option<&Int64Array>) -> Result<()> {
        for row in 0..values.len() {
            if values.is_null(row) {
                continue;
            }
            let n = counts.map_or(1, |c| c.value(row));
            *self
                .counts
                .entry(ScalarValue::try_from_array(values, row)?)
                .or_default() += n;
        }
        Ok(())
    }
}

impl Accumulator for Mode {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], None)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let values = states[0].as_list::<i32>();
        let counts = states[1].as_list::<i32>();
        for row in 0..values.len() {
            if values.is_null(row) {
                continue;
            }
            let counts = counts.value(row);
            self.add(&values.value(row), Some(counts.as_primitive::<Int64Type>()))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (values, counts): (Vec<ScalarValue>, Vec<ScalarValue>) = self
            .counts
            .iter()
            .map(|(v, n)| (v.clone(), ScalarValue::Int64(Some(*n))))
            .unzip();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &self.data_type)),
            ScalarValue::List(ScalarValue::new_list_nullable(&counts, &DataType::Int64)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        // The highest count; on equal counts the smallest value.
        let best = self.counts.iter().max_by(|(va, na), (vb, nb)| {
            na.cmp(nb)
                .then_with(|| vb.partial_cmp(va).unwrap_or(std::cmp::Ordering::Equal))
        });
        match best {
            Some((value, _)) => Ok(value.clone()),
            None => ScalarValue::try_from(&self.data_type),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .counts
                .keys()
                .map(|k| k.size() + std::mem::size_of::<i64>())
                .sum::<usize>()
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
        Ok(Box::new(Mode {
            data_type: args.return_type().clone(),
            counts: HashMap::new(),
        }))
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
