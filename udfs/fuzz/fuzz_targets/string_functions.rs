//! Every string function of the library, over arbitrary text, in every argument position, as
//! an array and as a constant: each call returns a value or NULL per row — never a panic, never
//! an error. The input is split on U+001F into rows; arguments are rotations of the rows.

#![no_main]

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, TypeSignature,
};
use libfuzzer_sys::fuzz_target;

/// The string functions with the numbers of arguments each accepts.
static FUNCTIONS: LazyLock<Vec<(Arc<ScalarUDF>, Vec<usize>)>> = LazyLock::new(|| {
    tessera_udfs::scalar_functions()
        .into_iter()
        .map(|f| {
            let arities = string_arities(&f.signature().type_signature);
            (f, arities)
        })
        .filter(|(_, arities)| !arities.is_empty())
        .collect()
});

fn string_arities(signature: &TypeSignature) -> Vec<usize> {
    match signature {
        TypeSignature::String(n) => vec![*n],
        TypeSignature::OneOf(options) => options.iter().flat_map(string_arities).collect(),
        _ => vec![],
    }
}

fn call(f: &ScalarUDF, args: Vec<ColumnarValue>, rows: usize) {
    let has_constant = args.iter().any(|a| matches!(a, ColumnarValue::Scalar(_)));
    let arg_fields: Vec<_> = (0..args.len())
        .map(|i| Arc::new(Field::new(format!("a{i}"), DataType::Utf8, true)))
        .collect();
    let scalars: Vec<Option<&ScalarValue>> = args
        .iter()
        .map(|a| match a {
            ColumnarValue::Scalar(s) => Some(s),
            ColumnarValue::Array(_) => None,
        })
        .collect();
    let return_field = f
        .return_field_from_args(ReturnFieldArgs {
            arg_fields: &arg_fields,
            scalar_arguments: &scalars,
        })
        .expect("return type");
    let out = f.invoke_with_args(ScalarFunctionArgs {
        args,
        arg_fields,
        number_rows: rows,
        return_field,
        config_options: Arc::new(ConfigOptions::default()),
    });
    match out {
        Ok(ColumnarValue::Array(a)) => assert_eq!(a.len(), rows, "{}", f.name()),
        Ok(ColumnarValue::Scalar(_)) => {}
        // A constant option the function does not know (a platform, a region, a date order)
        // is a mistake in the query and an error naming it; per-row values never are.
        Err(e) => {
            let message = e.to_string();
            assert!(
                has_constant && message.contains("unknown"),
                "{} failed: {message}",
                f.name()
            )
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let rows: Vec<Option<&str>> = text
        .split('\u{1f}')
        .map(|r| (r != "\u{0}").then_some(r))
        .take(64)
        .collect();
    let n = rows.len();
    let column = |k: usize| -> ArrayRef {
        let mut r = rows.clone();
        r.rotate_left(k % n);
        Arc::new(StringArray::from(r))
    };
    for (f, arities) in FUNCTIONS.iter() {
        for &arity in arities {
            // All arguments as arrays.
            call(f, (0..arity).map(|k| ColumnarValue::Array(column(k))).collect(), n);
            // Each argument in turn as a constant (the fast path), the others as arrays.
            for constant in 0..arity {
                let args = (0..arity)
                    .map(|k| {
                        if k == constant {
                            ColumnarValue::Scalar(ScalarValue::Utf8(rows[k % n].map(String::from)))
                        } else {
                            ColumnarValue::Array(column(k))
                        }
                    })
                    .collect();
                call(f, args, n);
            }
        }
    }
});
