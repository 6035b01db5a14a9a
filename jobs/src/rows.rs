//! Rows of a query's result read by column name with their types: numbers as numbers, not
//! parsed back from the text they display as.

use datafusion::arrow::array::{Array, BooleanArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// One row of a result (the batch is shared, not copied).
#[derive(Debug, Clone)]
pub struct Row {
    batch: RecordBatch,
    index: usize,
}

/// Every row of `batches`, in order.
pub fn rows(batches: &[RecordBatch]) -> Vec<Row> {
    batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(|index| Row {
                batch: b.clone(),
                index,
            })
        })
        .collect()
}

impl Row {
    /// Where `column` is (a column the query does not return is a mistake in our SQL).
    fn index(&self, column: &str) -> usize {
        self.batch
            .schema()
            .index_of(column)
            .unwrap_or_else(|_| panic!("the query has no column `{column}`"))
    }

    /// The cell of `column` as a one-value array of `to` (`None`: NULL or not castable).
    fn cell(&self, column: &str, to: &DataType) -> Option<std::sync::Arc<dyn Array>> {
        let at = self.index(column);
        let cell = self.batch.column(at).slice(self.index, 1);
        let cell = cast(&cell, to).ok()?;
        (!cell.is_null(0)).then_some(cell)
    }

    /// Whether the result has `column`.
    pub fn has(&self, column: &str) -> bool {
        self.batch.schema().index_of(column).is_ok()
    }

    /// Whether the value is NULL.
    pub fn is_null(&self, column: &str) -> bool {
        self.cell(column, &DataType::Utf8).is_none()
    }

    /// The value as a truth value (false for NULL).
    pub fn flag(&self, column: &str) -> bool {
        self.cell(column, &DataType::Boolean).is_some_and(|c| {
            c.as_any()
                .downcast_ref::<BooleanArray>()
                .expect("cast to Boolean")
                .value(0)
        })
    }

    /// The value as people read it ("" for NULL).
    pub fn text(&self, column: &str) -> String {
        let at = self.index(column);
        let array = self.batch.column(at);
        if array.is_null(self.index) {
            return String::new();
        }
        ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
            .map(|f| f.value(self.index).to_string())
            .unwrap_or_default()
    }

    /// The value as a whole number (0 for NULL).
    pub fn int(&self, column: &str) -> i64 {
        self.cell(column, &DataType::Int64).map_or(0, |c| {
            c.as_any()
                .downcast_ref::<Int64Array>()
                .expect("cast to Int64")
                .value(0)
        })
    }

    /// The value as a number to count or chart (0 for NULL or a value that is not a number).
    pub fn number(&self, column: &str) -> f64 {
        let value = self.float(column);
        if value.is_nan() { 0.0 } else { value }
    }

    /// The value as a float (NaN for NULL).
    pub fn float(&self, column: &str) -> f64 {
        self.cell(column, &DataType::Float64).map_or(f64::NAN, |c| {
            c.as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast to Float64")
                .value(0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int32Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn cells_read_with_their_types() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
            Field::new("share", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Int32Array::from(vec![Some(1_234_567), None])),
                Arc::new(Float64Array::from(vec![Some(0.125), None])),
            ],
        )
        .unwrap();
        let rows = rows(&[batch.clone(), batch]);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].text("name"), "a");
        assert_eq!(rows[0].int("n"), 1_234_567);
        assert_eq!(rows[0].float("n"), 1_234_567.0);
        assert_eq!(rows[0].float("share"), 0.125);
        assert_eq!(rows[0].text("share"), "0.125");
        assert_eq!(rows[1].text("name"), "");
        assert_eq!(rows[1].int("n"), 0);
        assert!(rows[1].float("share").is_nan());
        assert_eq!(rows[1].number("share"), 0.0);
        assert_eq!(rows[0].number("name"), 0.0);
        assert_eq!(rows[2].text("name"), "a");
        assert!(rows[1].is_null("n") && !rows[0].is_null("n"));
        assert!(rows[0].has("share") && !rows[0].has("other"));
    }
}
