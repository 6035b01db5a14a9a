//! Numeric and date distances for comparison levels (`days_between(a, b) <= 30`,
//! `relative_difference(a, b) < 0.1`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Date32Array, Float64Array, Int64Array};
use datafusion::arrow::compute::{binary, cast};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Signature, Volatility};
use datafusion_macros::user_doc;

/// `f` over two arguments cast to `input`, as a scalar when both are constants.
fn eval_pair(
    args: &[ColumnarValue],
    rows: usize,
    input: &DataType,
    f: impl Fn(&ArrayRef, &ArrayRef) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let n = if all_scalar { 1 } else { rows };
    let arrays = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let array = a.to_array(n)?;
            cast(&array, input).map_err(|e| {
                DataFusionError::Execution(format!(
                    "argument {}: cannot read {} as {input}: {e}",
                    i + 1,
                    array.data_type()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let out = f(&arrays[0], &arrays[1])?;
    Ok(if all_scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}

/// |a − b| / max(|a|, |b|): 0 for equal values, 1 when one is 0 and the other not.
pub fn relative_difference(a: f64, b: f64) -> f64 {
    let scale = a.abs().max(b.abs());
    if scale == 0.0 {
        0.0
    } else {
        ((a - b).abs() / scale).min(1.0)
    }
}

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "The number of days between two dates, whatever their order (a \
        non-negative integer). Timestamps count by their date; strings are read as ISO dates. \
        NULL when either is NULL.",
        syntax_example = "days_between(a, b)",
        sql_example = r#"```sql
> select days_between(date '2024-03-01', date '2024-02-01');
29
```"#,
        argument(name = "a", description = "A date."),
        argument(name = "b", description = "Another date.")
    )]
    pub struct DaysBetween;
    name: "days_between",
    // Any two arguments Arrow can cast to a date: dates, timestamps, ISO strings.
    signature: Signature::any(2, Volatility::Immutable),
    returns: DataType::Int64,
    eval: |args, rows| eval_pair(args, rows, &DataType::Date32, |a, b| {
        let (a, b) = (downcast::<Date32Array>(a), downcast::<Date32Array>(b));
        let out: Int64Array = binary(a, b, |x, y| (i64::from(x) - i64::from(y)).abs())?;
        Ok(Arc::new(out))
    }),
}

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "The relative difference of two numbers, |a − b| / max(|a|, |b|), in \
        [0, 1]: 0 when equal, 1 when one is 0 and the other is not (amounts, ages, house \
        numbers). NULL when either is NULL or not finite.",
        syntax_example = "relative_difference(a, b)",
        sql_example = r#"```sql
> select relative_difference(95, 100);
0.05
```"#,
        argument(name = "a", description = "A number."),
        argument(name = "b", description = "Another number.")
    )]
    pub struct RelativeDifference;
    name: "relative_difference",
    signature: Signature::uniform(2, vec![DataType::Float64], Volatility::Immutable),
    returns: DataType::Float64,
    eval: |args, rows| eval_pair(args, rows, &DataType::Float64, |a, b| {
        let (a, b) = (downcast::<Float64Array>(a), downcast::<Float64Array>(b));
        let out: Float64Array = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| match (x, y) {
                (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
                    Some(relative_difference(x, y))
                }
                _ => None,
            })
            .collect();
        Ok(Arc::new(out))
    }),
}

fn downcast<T: 'static>(array: &ArrayRef) -> &T {
    array
        .as_any()
        .downcast_ref::<T>()
        .expect("cast to the input type")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative() {
        assert_eq!(relative_difference(0.0, 0.0), 0.0);
        assert_eq!(relative_difference(0.0, 5.0), 1.0);
        assert_eq!(relative_difference(-5.0, 5.0), 1.0);
        assert!((relative_difference(95.0, 100.0) - 0.05).abs() < 1e-12);
        assert_eq!(relative_difference(1e308, -1e308), 1.0);
    }
}
