//! `latest_value`, `earliest_value`, `priority_value`, `longest_value`: keep the value whose key
//! is best (a timestamp, a source priority, a length).

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, Signature, Volatility};
use datafusion_macros::user_doc;

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

#[derive(Debug)]
struct Best {
    rule: Rule,
    value: ScalarValue,
    key: ScalarValue,
}

impl Best {
    fn offer(&mut self, value: ScalarValue, key: ScalarValue) {
        if value.is_null() || key.is_null() {
            return;
        }
        let better = if self.value.is_null() {
            true
        } else {
            let by_key = key.partial_cmp(&self.key).unwrap_or(Ordering::Equal);
            let by_key = if self.rule == Rule::Min {
                by_key.reverse()
            } else {
                by_key
            };
            match by_key {
                Ordering::Greater => true,
                Ordering::Less => false,
                // Ties: the smallest value, so the result does not depend on row order.
                Ordering::Equal => value.partial_cmp(&self.value) == Some(Ordering::Less),
            }
        };
        if better {
            self.value = value;
            self.key = key;
        }
    }

    fn offer_arrays(&mut self, values: &ArrayRef, keys: Option<&ArrayRef>) -> Result<()> {
        for row in 0..values.len() {
            if values.is_null(row) {
                continue;
            }
            let value = ScalarValue::try_from_array(values, row)?;
            let key = match keys {
                Some(keys) => ScalarValue::try_from_array(keys, row)?,
                None => ScalarValue::Int64(Some(match &value {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)) => s.chars().count() as i64,
                    _ => 0,
                })),
            };
            self.offer(value, key);
        }
        Ok(())
    }
}

impl Accumulator for Best {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let keys = if self.rule == Rule::Longest {
            None
        } else {
            values.get(1)
        };
        self.offer_arrays(&values[0], keys)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.offer_arrays(&states[0], Some(&states[1]))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.value.clone(), self.key.clone()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() + self.key.size()
    }
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
                let value = ScalarValue::try_from(args.return_type())?;
                let key = if $rule == Rule::Longest {
                    ScalarValue::Int64(None)
                } else {
                    ScalarValue::try_from(args.expr_fields[1].data_type())?
                };
                Ok(Box::new(Best {
                    rule: $rule,
                    value,
                    key,
                }))
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
