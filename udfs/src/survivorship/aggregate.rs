//! What the survivorship aggregates share: their per-group state is kept as Arrow row-format
//! bytes (`arrow::row`), so one implementation serves every value type, comparisons are byte
//! comparisons that follow the values' sort order, and a batch is converted to rows in one
//! vectorised pass. Each aggregate is a [`Survivor`]; [`Groups`] runs it as a DataFusion
//! `GroupsAccumulator` (GROUP BY: all groups in one state) and as a plain `Accumulator` (no
//! GROUP BY, window frames).

use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::row::{Row, RowConverter, Rows};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

/// The state of one survivorship aggregate for a number of groups.
pub(super) trait Survivor: Debug + Send + Sync + Sized + 'static {
    /// A state for no group, of the same kind and types.
    fn empty(&self) -> Result<Self>;
    /// Makes room for `total` groups.
    fn resize(&mut self, total: usize);
    /// Adds input rows (`merge = false`: the function's arguments, rows `filter` keeps) or
    /// partial states (`merge = true`: the state columns) to `groups[i]` for row `i`.
    fn add(
        &mut self,
        columns: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        merge: bool,
    ) -> Result<()>;
    /// The results of the groups in `range`, without changing the state.
    fn evaluate(&self, range: Range<usize>) -> Result<ArrayRef>;
    /// The partial states of the groups in `range`, without changing the state.
    fn state(&self, range: Range<usize>) -> Result<Vec<ArrayRef>>;
    /// Forgets the first `n` groups (renumbering the rest from 0).
    fn drop_first(&mut self, n: usize);
    /// The number of groups held.
    fn groups(&self) -> usize;
    /// Memory held, in bytes.
    fn size(&self) -> usize;
}

/// Which input rows an aggregate takes: not NULL in any of the given columns and not filtered
/// out by a FILTER clause.
#[derive(Debug)]
pub(super) struct Included(Option<NullBuffer>);

impl Included {
    pub(super) fn new(columns: &[&ArrayRef], filter: Option<&BooleanArray>) -> Self {
        let mut nulls = None;
        for column in columns {
            nulls = NullBuffer::union(nulls.as_ref(), column.logical_nulls().as_ref());
        }
        if let Some(filter) = filter {
            // A NULL filter result excludes the row, like false.
            let keep = NullBuffer::new(filter.values().clone());
            nulls = NullBuffer::union(nulls.as_ref(), Some(&keep));
            nulls = NullBuffer::union(nulls.as_ref(), filter.nulls());
        }
        Self(nulls)
    }

    #[inline]
    pub(super) fn contains(&self, row: usize) -> bool {
        self.0.as_ref().is_none_or(|n| n.is_valid(row))
    }
}

/// A [`Survivor`] as DataFusion's accumulators.
#[derive(Debug)]
pub(super) struct Groups<S>(pub(super) S);

impl<S: Survivor> GroupsAccumulator for Groups<S> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.resize(total_num_groups);
        self.0.add(values, group_indices, opt_filter, false)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.resize(total_num_groups);
        self.0.add(values, group_indices, None, true)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = emitted(emit_to, self.0.groups());
        let out = self.0.evaluate(0..n)?;
        self.0.drop_first(n);
        Ok(out)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let n = emitted(emit_to, self.0.groups());
        let out = self.0.state(0..n)?;
        self.0.drop_first(n);
        Ok(out)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row its own group.
        let n = values.first().map_or(0, |v| v.len());
        let mut fresh = self.0.empty()?;
        let groups: Vec<usize> = (0..n).collect();
        fresh.resize(n);
        fresh.add(values, &groups, opt_filter, false)?;
        fresh.state(0..n)
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

fn emitted(emit_to: EmitTo, groups: usize) -> usize {
    match emit_to {
        EmitTo::All => groups,
        EmitTo::First(n) => n.min(groups),
    }
}

impl<S: Survivor> Accumulator for Groups<S> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.resize(1);
        self.0.add(values, &vec![0; values[0].len()], None, false)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.resize(1);
        self.0.add(states, &vec![0; states[0].len()], None, true)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.resize(1);
        self.0
            .state(0..1)?
            .iter()
            .map(|column| ScalarValue::try_from_array(column, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.resize(1);
        ScalarValue::try_from_array(&self.0.evaluate(0..1)?, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.0.size()
    }
}

/// The length in characters of each string, dictionary-encoded or not (0 for other types;
/// NULL stays NULL).
pub(super) fn char_lengths(values: &ArrayRef) -> Result<ArrayRef> {
    let count = |s: Option<&str>| s.map(|s| s.chars().count() as i64);
    let lengths: Int64Array = match values.data_type() {
        DataType::Dictionary(_, plain) => return char_lengths(&cast(values, plain)?),
        DataType::Utf8 => values.as_string::<i32>().iter().map(count).collect(),
        DataType::LargeUtf8 => values.as_string::<i64>().iter().map(count).collect(),
        DataType::Utf8View => values.as_string_view().iter().map(count).collect(),
        _ => Int64Array::new(vec![0; values.len()].into(), values.logical_nulls()),
    };
    Ok(Arc::new(lengths))
}

/// The columns of `rows`, as `types`: the row format gives dictionary-encoded input back
/// as plain values, so those are cast back to the aggregate's declared types.
pub(super) fn decode<'a>(
    converter: &RowConverter,
    rows: impl IntoIterator<Item = Row<'a>>,
    types: &[&DataType],
) -> Result<Vec<ArrayRef>> {
    converter
        .convert_rows(rows)?
        .into_iter()
        .zip(types)
        .map(|(column, &to)| {
            if column.data_type() == to {
                Ok(column)
            } else {
                Ok(cast(&column, to)?)
            }
        })
        .collect()
}

/// One list per group of the values whose rows `groups` yields (NULL for a group without
/// values), decoded in one pass.
pub(super) fn rows_list<'a>(
    converter: &RowConverter,
    value_type: &DataType,
    groups: impl Iterator<Item = Vec<&'a [u8]>>,
) -> Result<ListArray> {
    let parser = converter.parser();
    let mut rows = Vec::new();
    let mut offsets = vec![0i32];
    let mut valid = Vec::new();
    for group in groups {
        valid.push(!group.is_empty());
        rows.extend(group.into_iter().map(|bytes| parser.parse(bytes)));
        offsets.push(i32::try_from(rows.len()).map_err(|_| {
            DataFusionError::Execution("survivorship state over 2^31 values".into())
        })?);
    }
    let values = decode(converter, rows, &[value_type])?.swap_remove(0);
    Ok(ListArray::new(
        Arc::new(Field::new_list_field(value_type.clone(), true)),
        OffsetBuffer::new(offsets.into()),
        values,
        Some(NullBuffer::from(valid)),
    ))
}

/// A list column of partial states as rows of its values, with each list's range of rows
/// (empty for a NULL list).
pub(super) fn list_rows(
    converter: &RowConverter,
    column: &ArrayRef,
) -> Result<(Rows, Vec<Range<usize>>)> {
    let list = column.as_list::<i32>();
    let rows = converter.convert_columns(&[list.values().clone()])?;
    let ranges = (0..list.len())
        .map(|i| {
            if list.is_null(i) {
                0..0
            } else {
                let offsets = list.value_offsets();
                offsets[i] as usize..offsets[i + 1] as usize
            }
        })
        .collect();
    Ok((rows, ranges))
}
