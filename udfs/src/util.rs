//! Vectorised evaluation shared by the string functions: every argument may be a Utf8,
//! LargeUtf8 or Utf8View array or a scalar; all-scalar calls are computed once.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, StringArray,
    StringViewArray,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::ColumnarValue;

/// One argument, readable row by row.
enum Strings<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
    Const(Option<&'a str>),
}

impl<'a> Strings<'a> {
    fn new(arg: &'a ColumnarValue, position: usize) -> Result<Self> {
        Ok(match arg {
            ColumnarValue::Array(array) => match array.data_type() {
                DataType::Utf8 => Strings::Utf8(array.as_any().downcast_ref().expect("utf8")),
                DataType::LargeUtf8 => {
                    Strings::Large(array.as_any().downcast_ref().expect("large utf8"))
                }
                DataType::Utf8View => {
                    Strings::View(array.as_any().downcast_ref().expect("utf8 view"))
                }
                DataType::Null => Strings::Const(None),
                other => return exec_err!("argument {position}: expected a string, got {other}"),
            },
            ColumnarValue::Scalar(scalar) => match scalar {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    Strings::Const(v.as_deref())
                }
                ScalarValue::Null => Strings::Const(None),
                other => {
                    return exec_err!(
                        "argument {position}: expected a string, got {}",
                        other.data_type()
                    );
                }
            },
        })
    }

    #[inline]
    fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            Strings::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            Strings::Large(a) => a.is_valid(row).then(|| a.value(row)),
            Strings::View(a) => a.is_valid(row).then(|| a.value(row)),
            Strings::Const(v) => *v,
        }
    }
}

/// Output array builders for [`map_strings`].
pub trait Output: Sized {
    /// The result as a scalar.
    fn scalar(value: Option<Self>) -> ScalarValue;
    /// The results as an array.
    fn array(values: Vec<Option<Self>>) -> ArrayRef;
}

impl Output for String {
    fn scalar(value: Option<Self>) -> ScalarValue {
        ScalarValue::Utf8(value)
    }
    fn array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(StringArray::from(values))
    }
}

impl Output for f64 {
    fn scalar(value: Option<Self>) -> ScalarValue {
        ScalarValue::Float64(value)
    }
    fn array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(Float64Array::from(values))
    }
}

impl Output for i64 {
    fn scalar(value: Option<Self>) -> ScalarValue {
        ScalarValue::Int64(value)
    }
    fn array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(Int64Array::from(values))
    }
}

/// A date as days since 1970-01-01 (Arrow `Date32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(pub i32);

impl Output for Days {
    fn scalar(value: Option<Self>) -> ScalarValue {
        ScalarValue::Date32(value.map(|d| d.0))
    }
    fn array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(datafusion::arrow::array::Date32Array::from(
            values
                .into_iter()
                .map(|d| d.map(|d| d.0))
                .collect::<Vec<_>>(),
        ))
    }
}

impl Output for bool {
    fn scalar(value: Option<Self>) -> ScalarValue {
        ScalarValue::Boolean(value)
    }
    fn array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(BooleanArray::from(values))
    }
}

/// Applies `f` to each row of string arguments. `f` sees NULLs as `None` and returns `None` for
/// NULL (NULL-in-NULL-out is the caller's choice, not forced here).
pub fn map_strings<O: Output>(
    args: &[ColumnarValue],
    rows: usize,
    mut f: impl FnMut(&[Option<&str>]) -> Option<O>,
) -> Result<ColumnarValue> {
    let inputs = args
        .iter()
        .enumerate()
        .map(|(i, a)| Strings::new(a, i + 1))
        .collect::<Result<Vec<_>>>()?;
    let mut row_args: Vec<Option<&str>> = vec![None; inputs.len()];
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        for (slot, input) in row_args.iter_mut().zip(&inputs) {
            *slot = input.get(0);
        }
        return Ok(ColumnarValue::Scalar(O::scalar(f(&row_args))));
    }
    let mut out = Vec::with_capacity(rows);
    for row in 0..rows {
        for (slot, input) in row_args.iter_mut().zip(&inputs) {
            *slot = input.get(row);
        }
        out.push(f(&row_args));
    }
    Ok(ColumnarValue::Array(O::array(out)))
}

/// The text of argument `i` when it is a non-NULL string constant (a platform, a region, an
/// option): functions check such options once and fail the query when they are unknown.
pub fn constant_str(args: &[ColumnarValue], i: usize) -> Option<&str> {
    match args.get(i)? {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(v))
            | ScalarValue::LargeUtf8(Some(v))
            | ScalarValue::Utf8View(Some(v)),
        ) => Some(v),
        _ => None,
    }
}

/// `f(a, b)` with NULL when either is NULL.
pub fn map_pairs<O: Output>(
    args: &[ColumnarValue],
    rows: usize,
    mut f: impl FnMut(&str, &str) -> O,
) -> Result<ColumnarValue> {
    map_strings(args, rows, |v| match (v[0], v[1]) {
        (Some(a), Some(b)) => Some(f(a, b)),
        _ => None,
    })
}

/// Declares a string function: a struct with its signature and documentation, and its
/// `ScalarUDFImpl` calling `$eval(args: &[ColumnarValue], rows: usize)`.
#[macro_export]
macro_rules! string_function {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
        name: $sql:literal,
        signature: $signature:expr,
        returns: $ret:expr,
        eval: $eval:expr $(,)?
    ) => {
        $(#[$meta])*
        #[doc = concat!("The SQL function `", $sql, "` (see its SQL documentation).")]
        #[derive(Debug, PartialEq, Eq, Hash)]
        $vis struct $name {
            signature: datafusion::logical_expr::Signature,
        }

        impl Default for $name {
            fn default() -> Self {
                Self { signature: $signature }
            }
        }

        impl datafusion::logical_expr::ScalarUDFImpl for $name {
            fn name(&self) -> &str {
                $sql
            }
            fn signature(&self) -> &datafusion::logical_expr::Signature {
                &self.signature
            }
            fn return_type(
                &self,
                _arg_types: &[datafusion::arrow::datatypes::DataType],
            ) -> datafusion::error::Result<datafusion::arrow::datatypes::DataType> {
                Ok($ret)
            }
            fn invoke_with_args(
                &self,
                args: datafusion::logical_expr::ScalarFunctionArgs,
            ) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> {
                let eval: fn(
                    &[datafusion::logical_expr::ColumnarValue],
                    usize,
                ) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> = $eval;
                eval(&args.args, args.number_rows)
            }
            fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
                self.doc()
            }
        }
    };
}

/// A signature of `n` string arguments (Utf8, LargeUtf8 or Utf8View).
pub fn strings(n: usize) -> datafusion::logical_expr::Signature {
    datafusion::logical_expr::Signature::string(n, datafusion::logical_expr::Volatility::Immutable)
}

/// A signature of `min..=max` string arguments.
pub fn strings_between(min: usize, max: usize) -> datafusion::logical_expr::Signature {
    datafusion::logical_expr::Signature::one_of(
        (min..=max)
            .map(datafusion::logical_expr::TypeSignature::String)
            .collect(),
        datafusion::logical_expr::Volatility::Immutable,
    )
}
