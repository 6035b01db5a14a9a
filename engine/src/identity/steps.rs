//! The steps of [`super::resolve`], in its order: the guards (1), the records numbered and
//! their keys registered with labels and unique values (2), the deterministic rules and their
//! components (3), the term frequencies (4), the blocked, compared pairs or the published ones
//! of unchanged rules (5), the model fitted or reused with its scores and clusters (6–8), the
//! stable ids (9), the statistics of the clusters (10) and the output tables (11).

use super::*;

/// The records' columns, checked: a `record_key` and a `source`, and every column the
/// settings name.
pub(super) fn check_columns(schema: &SchemaRef, config: &IdentityConfig) -> Result<Vec<String>> {
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    for required in ["record_key", "source"] {
        if !columns.iter().any(|c| c == required) {
            return Err(identity_err(format!(
                "the records have no `{required}` column (they have {})",
                columns.join(", ")
            )));
        }
    }
    config.validate(&columns).map_err(identity_err)?;
    Ok(columns)
}

/// The guarded keys of the records numbered by record key (rid), with the record keys and
/// sources indexed by rid: one string array each (not a `String` per record), shared with the
/// output tables.
pub(super) struct Numbered {
    pub(super) key_batches: Vec<RecordBatch>,
    pub(super) n: usize,
    pub(super) record_keys: StringArray,
    pub(super) sources: StringArray,
}

/// Step 2: the keys query (the records with their guarded values), numbered by record key;
/// record keys must be present and unique.
pub(super) async fn number_records(
    ctx: &SessionContext,
    config: &IdentityConfig,
    columns: &[String],
    text_splits: &[usize],
    budget: &mut Budget,
) -> Result<Numbered> {
    const WHAT: &str = "numbering the records";
    let keys_sql = sql::keys("__id_records", columns, config, text_splits);
    let df = ctx
        .sql(&keys_sql)
        .await
        .map_err(|e| identity_err(format!("{WHAT}: {e}")))?;
    let mut stream = df.execute_stream().await?;
    // The keys are held from here on: reserved as they come, so that the query's own sorts
    // and joins spill instead of the process outgrowing the limit.
    let (mut key_batches, mut bytes) = (Vec::new(), 0);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| identity_err(format!("{WHAT}: {e}")))?;
        bytes += batches_size(std::slice::from_ref(&batch));
        key_batches.push(batch);
        budget.hold(Part::Records, bytes, WHAT)?;
    }
    drop(stream);
    let n: usize = key_batches.iter().map(|b| b.num_rows()).sum();
    if n > u32::MAX as usize {
        return Err(identity_err(format!("{n} records: more than 2^32 per run")));
    }
    // While numbering: a reference to each key and source (16 bytes each), the order and the
    // ranks (12), and the two columns copied in rid order.
    let strings: usize = ["record_key", "source"]
        .iter()
        .filter_map(|c| {
            let parts = string_parts(&key_batches, c).ok()?;
            Some(
                parts
                    .iter()
                    .map(|a| a.to_data().get_slice_memory_size().unwrap_or(0))
                    .sum::<usize>(),
            )
        })
        .sum();
    budget.hold(Part::Records, bytes + n * 44 + strings, WHAT)?;
    let Numbering {
        batches: key_batches,
        record_keys,
        sources,
    } = number_by_record_key(key_batches)?;
    if record_keys.null_count() > 0 {
        return Err(identity_err("a record has a NULL record_key"));
    }
    if let Some(r) = (1..n).find(|&r| record_keys.value(r) == record_keys.value(r - 1)) {
        return Err(identity_err(format!(
            "record_key `{}` appears more than once: record keys must be unique",
            record_keys.value(r)
        )));
    }
    Ok(Numbered {
        key_batches,
        n,
        record_keys,
        sources,
    })
}

/// What the matching steps read of the numbered records: labels, unique identifier values,
/// and the keys' rows (the keys table is registered as [`sql::KEYS`]).
pub(super) struct Keys {
    /// The labelled records' labels, by rid (see `label_column`).
    pub(super) labels: Vec<Option<u32>>,
    pub(super) unique: cluster::Uniques,
    /// The sample's pairs gather their rows from the keys' batches (shared, not copied).
    pub(super) key_rows: KeyRows,
}

/// Step 2 (end): the keys table the joins read (the rid and the matching columns only),
/// registered, and the records' labels and unique values, all held in the identity budget.
pub(super) async fn register_keys(
    ctx: &SessionContext,
    config: &IdentityConfig,
    key_batches: Vec<RecordBatch>,
    columns: &[String],
    (record_keys, sources): (&StringArray, &StringArray),
    budget: &mut Budget,
) -> Result<Keys> {
    let n = record_keys.len();
    let labels = labels_by_rid(config, &key_batches, n)?;
    let unique = unique_values(&key_batches, &config.unique_identifiers(), n)?;
    let (key_batches, keys_schema) = matching_keys(key_batches, config, columns)?;
    let keys_bytes = batches_size(&key_batches);
    let key_rows = KeyRows::new(key_batches.clone())?;
    register(ctx, sql::KEYS, key_batches, keys_schema).await?;
    let strings = record_keys.get_array_memory_size() + sources.get_array_memory_size();
    // where each rid's row is, the components of the deterministic clusters, and the
    // clustering's own arrays
    let per_record = size_of::<u32>() * 6;
    let bytes = keys_bytes + strings + unique.bytes() + n * per_record;
    budget.hold(Part::Records, bytes, "numbering the records")?;
    Ok(Keys {
        labels,
        unique,
        key_rows,
    })
}

/// Step 9: stable ids for the customers (see [`ids::assign`]), and each record's customer.
pub(super) async fn stable_ids(
    member_lists: &[&Vec<u32>],
    record_keys: &StringArray,
    (previous, budget): (&PreviousState, &mut Budget),
    now_micros: i64,
) -> Result<(ids::Assignment, Vec<usize>)> {
    // The previous run's ids, read now (see [`PreviousIdTables`]).
    let previous_ids = previous.id_tables.read().await?;
    budget.hold(
        Part::Previous,
        previous.bytes() + previous_ids.bytes(),
        "holding the previous run's customers",
    )?;
    let cluster_keys: Vec<Vec<&str>> = member_lists
        .iter()
        .map(|m| m.iter().map(|&r| record_keys.value(r as usize)).collect())
        .collect();
    let assignment = ids::assign(
        &cluster_keys,
        &previous_ids.assignment,
        &previous_ids.used_ids,
        now_micros,
    );
    drop(previous_ids);
    let mut customer_of = vec![0usize; record_keys.len()];
    for (c, m) in member_lists.iter().enumerate() {
        for &r in m.iter() {
            customer_of[r as usize] = c;
        }
    }
    Ok((assignment, customer_of))
}

/// Step 1: guards: values set aside (placeholders, values held by too many records) and values
/// split by person (`shared_when`), registered for the keys query. Returns the identifiers
/// whose split values are text (the keys query compares them as such).
pub(super) async fn guard_values(
    ctx: &SessionContext,
    config: &IdentityConfig,
    records_schema: &SchemaRef,
    stats: &mut Stats,
    guard_rows: &mut Vec<GuardRow>,
) -> Result<Vec<usize>> {
    let mut text_splits: Vec<usize> = Vec::new();
    let value_schema = Arc::new(Schema::new(vec![
        Field::new("value", DataType::Utf8, true),
        Field::new("records", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
    ]));
    for (i, id) in config.identifiers.iter().enumerate() {
        if !sql::guarded(id) {
            continue;
        }
        let q = sql::guard_hits("__id_records", id);
        let batches = collect(ctx, &q, &format!("guard on `{}`", id.column)).await?;
        let mut normalised = Vec::new();
        for b in &batches {
            let (values, counts, reasons) =
                (strs(b, "value")?, i64s(b, "records")?, strs(b, "reason")?);
            for r in 0..b.num_rows() {
                guard_rows.push(GuardRow {
                    guard: reasons.value(r).to_string(),
                    subject: id.column.clone(),
                    value: Some(values.value(r).to_string()),
                    records: counts.value(r),
                    record_key_a: None,
                    record_key_b: None,
                });
            }
            normalised.push(RecordBatch::try_new(
                value_schema.clone(),
                vec![Arc::new(values), Arc::new(counts), Arc::new(reasons)],
            )?);
        }
        register(ctx, &sql::guard_table(i), normalised, value_schema.clone()).await?;
        if let Some(predicate) = &id.shared_when {
            let what = format!("shared_when on `{}`", id.column);
            let batches = collect(
                ctx,
                &sql::holder_pairs("__id_records", id, predicate),
                &what,
            )
            .await?;
            // Only values some pair tells apart can be shared (`guards::split` leaves the
            // others as they are): the pairs of the rest are not copied out at all.
            let mut columns = Vec::with_capacity(batches.len());
            for b in &batches {
                let (values, a, bb) = (strs(b, "value")?, strs(b, "a")?, strs(b, "b")?);
                let differ = column(b, "differ", &DataType::Boolean)?;
                let differ = differ
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                    .expect("boolean")
                    .clone();
                columns.push((values, a, bb, differ));
            }
            let told_apart =
                |d: &datafusion::arrow::array::BooleanArray, r: usize| d.is_valid(r) && d.value(r);
            let contested: rustc_hash::FxHashSet<&str> = columns
                .iter()
                .flat_map(|(values, _, _, differ)| {
                    (0..values.len())
                        .filter(|&r| told_apart(differ, r))
                        .map(|r| values.value(r))
                })
                .collect();
            let mut pairs = Vec::new();
            for (values, a, bb, differ) in &columns {
                for r in 0..values.len() {
                    if contested.contains(values.value(r)) {
                        pairs.push((
                            values.value(r).to_string(),
                            a.value(r).to_string(),
                            bb.value(r).to_string(),
                            told_apart(differ, r),
                        ));
                    }
                }
            }
            drop(contested);
            drop(columns);
            let shared = guards::split(pairs);
            let (mut keys, mut matched) = (StringBuilder::new(), StringBuilder::new());
            for value in &shared {
                guard_rows.push(GuardRow {
                    guard: "shared_value".into(),
                    subject: id.column.clone(),
                    value: Some(value.value.clone()),
                    records: value.holders.len() as i64,
                    record_key_a: None,
                    record_key_b: None,
                });
                for (key, split) in &value.holders {
                    keys.append_value(key);
                    matched.append_option(split.as_deref());
                }
            }
            stats.push("shared_values", &id.column, shared.len() as f64);
            let split_schema = Arc::new(Schema::new(vec![
                Field::new("record_key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ]));
            let batch = RecordBatch::try_new(
                split_schema.clone(),
                vec![Arc::new(keys.finish()), Arc::new(matched.finish())],
            )?;
            register(ctx, &sql::split_table(i), vec![batch], split_schema).await?;
            let field = records_schema.field_with_name(&id.column)?;
            if matches!(
                field.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            ) {
                text_splits.push(i);
            }
        }
    }
    Ok(text_splits)
}

/// Step 3: deterministic rules: per rule, a link from each record to the first of its group.
pub(super) async fn rule_links(
    ctx: &SessionContext,
    config: &IdentityConfig,
    n: usize,
    stats: &mut Stats,
) -> Result<(Vec<cluster::Link>, Vec<u32>)> {
    let mut links: Vec<cluster::Link> = Vec::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let batches = collect(
            ctx,
            &sql::rule_groups(rule),
            &format!("rule `{}`", rule.name),
        )
        .await?;
        let mut count = 0u64;
        for b in &batches {
            let (rid, root) = (i64s(b, "rid")?, i64s(b, "root")?);
            for r in 0..b.num_rows() {
                if rid.value(r) != root.value(r) {
                    count += 1;
                    links.push(cluster::Link {
                        a: root.value(r) as u32,
                        b: rid.value(r) as u32,
                        kind: i as u16,
                        // Earlier rules first, all before any probabilistic link.
                        strength: 3.0 - i as f64 * 1e-3,
                    });
                }
            }
        }
        stats.push("deterministic_links", &rule.name, count as f64);
    }
    // The components they form: each record's smallest record.
    let deterministic = cluster::cluster(
        n,
        links.clone(),
        cluster::Uniques::new(n, 0),
        &[],
        cluster::Contradicted::NONE,
        usize::MAX,
    )
    .component;
    Ok((links, deterministic))
}

/// Step 4: term frequencies (a reused model keeps those it was trained with: earlier pairs score
/// as before), then every level's SQL checked on its own, so an error names its level.
pub(super) async fn term_frequencies(
    ctx: &SessionContext,
    config: &IdentityConfig,
    previous: &PreviousState,
    model_reused: bool,
) -> Result<()> {
    for (i, c) in config.comparisons.iter().enumerate() {
        if c.term_frequency
            && let Some(col) = &c.column
        {
            let current = sql::term_frequencies(col);
            let query = if model_reused {
                let kept: Vec<(&str, f64)> = previous
                    .term_frequencies
                    .iter()
                    .filter(|(name, _, _)| name == &c.name)
                    .map(|(_, v, f)| (v.as_str(), *f))
                    .collect();
                let kept_schema = Arc::new(Schema::new(vec![
                    Field::new("value", DataType::Utf8, false),
                    Field::new("frequency", DataType::Float64, false),
                ]));
                let batch = RecordBatch::try_new(
                    kept_schema.clone(),
                    vec![
                        Arc::new(StringArray::from_iter_values(kept.iter().map(|k| k.0))),
                        Arc::new(Float64Array::from_iter_values(kept.iter().map(|k| k.1))),
                    ],
                )?;
                let name = format!("__id_tf_kept_{i}");
                register(ctx, &name, vec![batch], kept_schema).await?;
                format!(
                    "select c.value, coalesce(k.frequency, c.frequency) as frequency from ({current}) c \
                 left join {name} k on k.value = cast(c.value as varchar)"
                )
            } else {
                current
            };
            let batches = collect(ctx, &query, &format!("term frequencies of `{col}`")).await?;
            let schema = Arc::new(Schema::new(vec![
                Field::new("value", keys_field_type(ctx, col).await?, true),
                Field::new("frequency", DataType::Float64, true),
            ]));
            let batches = batches
                .into_iter()
                .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            register(ctx, &sql::tf_table(i), batches, schema).await?;
        }
        for level in &c.levels {
            let probe = format!(
                "select {} from {k} l, {k} r limit 0",
                level.when,
                k = sql::KEYS
            );
            if let Err(e) = ctx.sql(&probe).await {
                return Err(identity_err(format!(
                    "comparison `{}`, level `{}` (`{}`): {e}",
                    c.name, level.name, level.when
                )));
            }
        }
    }
    Ok(())
}

/// Step 4 (end): each record's term frequencies, looked up once (see
/// [`sql::record_frequencies`]) and added to the keys table as columns the blocking queries
/// read, and to the rows held for the sample.
pub(super) async fn frequency_columns(
    ctx: &SessionContext,
    config: &IdentityConfig,
    key_rows: &mut KeyRows,
    budget: &mut Budget,
) -> Result<()> {
    let weighed: Vec<usize> = tf_index(config)
        .iter()
        .enumerate()
        .filter_map(|(i, k)| k.map(|_| i))
        .collect();
    if weighed.is_empty() {
        return Ok(());
    }
    let n = key_rows.len();
    let extra = n * weighed.len() * (size_of::<f64>() * 2 + 1);
    let held = budget.parts[Part::Records as usize];
    budget.hold(
        Part::Records,
        held + extra,
        "looking up each record's frequencies",
    )?;
    let mut by_rid = vec![vec![None; n]; weighed.len()];
    let query = sql::record_frequencies(config);
    let df = ctx
        .sql(&query)
        .await
        .map_err(|e| identity_err(format!("term frequencies per record: {e}")))?;
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let b = batch.map_err(|e| identity_err(format!("term frequencies per record: {e}")))?;
        let rids = i64s(&b, "rid")?;
        for (k, &i) in weighed.iter().enumerate() {
            let f = column(&b, &sql::frequency_column(i), &DataType::Float64)?;
            let f = f.as_any().downcast_ref::<Float64Array>().expect("f64");
            for r in 0..b.num_rows() {
                let slot = usize::try_from(rids.value(r))
                    .ok()
                    .and_then(|rid| by_rid[k].get_mut(rid))
                    .ok_or_else(|| identity_err("internal: a frequency's rid is out of range"))?;
                *slot = f.is_valid(r).then(|| f.value(r));
            }
        }
    }
    let mut batches = Vec::with_capacity(key_rows.batches.len());
    let mut schema = None;
    for b in &key_rows.batches {
        let rids = i64s(b, "rid")?;
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns = b.columns().to_vec();
        for (k, &i) in weighed.iter().enumerate() {
            fields.push(Field::new(
                sql::frequency_column(i),
                DataType::Float64,
                true,
            ));
            let values: Float64Array = rids
                .values()
                .iter()
                .map(|&rid| by_rid[k][rid as usize])
                .collect();
            columns.push(Arc::new(values));
        }
        let with = Arc::new(Schema::new(fields));
        batches.push(RecordBatch::try_new(with.clone(), columns)?);
        schema = Some(with);
    }
    drop(by_rid);
    let Some(schema) = schema else {
        return Ok(());
    };
    register(ctx, sql::KEYS, batches.clone(), schema).await?;
    key_rows.batches = batches;
    let extra = n * weighed.len() * (size_of::<f64>() + 1);
    budget.hold(
        Part::Records,
        held + extra,
        "adding each record's frequencies",
    )
}

/// The compared pairs, in blocking-rule order: each pair's comparison levels (`-1`: NULL, no
/// evidence) and the term frequencies of its agreeing values, flattened.
pub(super) struct Compared {
    pub(super) pairs: Vec<Pair>,
    pub(super) gammas: Vec<i8>,
    pub(super) tfs: Frequencies,
    /// Where each blocking rule's pairs end (pairs come rule by rule).
    pub(super) rule_ends: Vec<usize>,
    /// Blocking rules whose pairs were read from the published `match_pairs`.
    pub(super) reused_rules: usize,
    /// On a cluster: the pairs, kept in the resolution's scratch folder instead of `pairs`,
    /// `gammas` and `tfs` (which stay empty).
    pub(super) kept: Option<kept::KeptPairs>,
}

impl Compared {
    /// The blocking rule that proposed pair `p`.
    pub(super) fn rule_of(&self, p: usize) -> usize {
        self.rule_ends.partition_point(|&end| end <= p)
    }

    /// Bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.pairs.capacity() * size_of::<Pair>() + self.gammas.capacity() + self.tfs.bytes()
    }

    /// Pairs compared.
    pub(super) fn len(&self) -> usize {
        self.kept.as_ref().map_or(self.pairs.len(), |k| k.rows)
    }
}

/// Where each comparison's term frequency is among a pair's (None: not weighed by frequency).
pub(super) fn tf_index(config: &IdentityConfig) -> Vec<Option<usize>> {
    let mut k = 0;
    config
        .comparisons
        .iter()
        .map(|c| {
            (c.term_frequency && c.column.is_some()).then(|| {
                k += 1;
                k - 1
            })
        })
        .collect()
}

/// The published pairs of the blocking rules that would block and compare them again (see
/// [`PublishedPairs`]), when the term frequencies in them are this run's: the stored model is
/// reused, the publishing run computed them from these records, or none is weighed.
pub(super) fn published_rules<'a>(
    config: &IdentityConfig,
    previous: &PreviousState,
    model_reused: bool,
    keys: &'a StringArray,
) -> Option<Published<'a>> {
    let same_frequencies = model_reused
        || tf_index(config).iter().all(Option::is_none)
        || previous
            .model
            .as_ref()
            .is_some_and(|m| m.run_id == m.published_by);
    let published = previous.compared.as_ref().filter(|_| same_frequencies)?;
    let rules: Vec<bool> = (0..config.blocking.len())
        .map(|i| {
            i < published.settings.blocking.len()
                && published.settings.blocking_signature(i) == config.blocking_signature(i)
        })
        .collect();
    rules.iter().any(|&r| r).then(|| Published {
        table: published.table.clone(),
        keys,
        rules,
    })
}

/// Sorts `pairs` by (a, b), moving each pair's `comparisons` levels and `tf_count` term
/// frequencies with it (the permutation applied in place, cycle by cycle: no second copy of
/// the arrays).
fn sort_pairs(
    pairs: &mut [Pair],
    gammas: &mut [i8],
    tfs: &mut [u32],
    comparisons: usize,
    tf_count: usize,
) {
    let n = pairs.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by_key(|&i| (pairs[i as usize].a, pairs[i as usize].b));
    let mut done = vec![false; n];
    let (mut gamma, mut tf) = (vec![0i8; comparisons], vec![0u32; tf_count]);
    let (c, t) = (comparisons, tf_count);
    for start in 0..n {
        if done[start] {
            continue;
        }
        // Position k takes the pair at order[k]; the cycle's first pair is held aside.
        let first = pairs[start];
        gamma.copy_from_slice(&gammas[start * c..(start + 1) * c]);
        tf.copy_from_slice(&tfs[start * t..(start + 1) * t]);
        let mut k = start;
        loop {
            done[k] = true;
            let from = order[k] as usize;
            if from == start {
                pairs[k] = first;
                gammas[k * c..(k + 1) * c].copy_from_slice(&gamma);
                tfs[k * t..(k + 1) * t].copy_from_slice(&tf);
                break;
            }
            pairs[k] = pairs[from];
            gammas.copy_within(from * c..(from + 1) * c, k * c);
            tfs.copy_within(from * t..(from + 1) * t, k * t);
            k = from;
        }
    }
}

/// The published compared pairs read by [`compare_blocked`]: the table, the records' keys by
/// rid, and for each blocking rule whether its pairs are read from it.
pub(super) struct Published<'a> {
    pub(super) table: Arc<dyn TableProvider>,
    pub(super) keys: &'a StringArray,
    pub(super) rules: Vec<bool>,
}

/// Step 5: blocking and comparison vectors: each blocking rule's pairs (blocks over the rule's
/// `max_block_size` skipped and reported), compared on every comparison, streamed into
/// compact arrays held in the identity budget. The rules `published` marks are read from the
/// published `match_pairs` instead of joined and compared again.
pub(super) async fn compare_blocked(
    ctx: &SessionContext,
    config: &IdentityConfig,
    tf_index: &[Option<usize>],
    published: Option<Published<'_>>,
    budget: &mut Budget,
    stats: &mut Stats,
    guard_rows: &mut Vec<GuardRow>,
) -> Result<Compared> {
    let mut reused = vec![false; config.blocking.len()];
    if let Some(published) = published {
        ctx.register_table(sql::PUBLISHED_PAIRS, published.table)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("rid", DataType::Int64, false),
            Field::new("record_key", DataType::Utf8, false),
        ]));
        let keys = published.keys;
        let rids = Int64Array::from_iter_values(0..keys.len() as i64);
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(rids), Arc::new(keys.clone())])?;
        register(ctx, sql::RIDS, vec![batch], schema).await?;
        reused = published.rules;
    }
    let compared = compare_rules(ctx, config, tf_index, &reused, budget, stats, guard_rows).await;
    if reused.iter().any(|&r| r) {
        ctx.deregister_table(sql::PUBLISHED_PAIRS)?;
        ctx.deregister_table(sql::RIDS)?;
    }
    let reused_rules = reused.iter().filter(|&&r| r).count();
    compared.map(|c| Compared { reused_rules, ..c })
}

#[allow(clippy::too_many_arguments)] // compare_blocked's, by name
async fn compare_rules(
    ctx: &SessionContext,
    config: &IdentityConfig,
    tf_index: &[Option<usize>],
    reused: &[bool],
    budget: &mut Budget,
    stats: &mut Stats,
    guard_rows: &mut Vec<GuardRow>,
) -> Result<Compared> {
    let mut pairs: Vec<Pair> = Vec::new();
    let mut gammas: Vec<i8> = Vec::new();
    let mut tfs = Frequencies::default();
    let mut rule_ends = Vec::with_capacity(config.blocking.len());
    // On a cluster the pairs stay there (see [`kept`]); with no blocking rule there are none.
    let mut kept = match ctx
        .state()
        .config()
        .get_extension::<crate::scratch::Scratch>()
    {
        Some(scratch) if !config.blocking.is_empty() => Some(kept::KeptPairs::new(&scratch)?),
        _ => None,
    };
    for (i, rule) in config.blocking.iter().enumerate() {
        let skipped = collect(
            ctx,
            &sql::mega_blocks(rule, config.block_cap(rule)),
            &format!("blocking rule `{}`", rule.name),
        )
        .await?;
        if let Some(b) = skipped.first().filter(|b| b.num_rows() > 0) {
            let (blocks, recs, skipped_pairs) = (
                i64s(b, "blocks")?.value(0),
                i64s(b, "records")?.value(0),
                i64s(b, "pairs")?.value(0),
            );
            if blocks > 0 {
                stats.push("skipped_blocks", &rule.name, blocks as f64);
                stats.push("skipped_pairs", &rule.name, skipped_pairs as f64);
                guard_rows.push(GuardRow {
                    guard: "max_block_size".into(),
                    subject: rule.name.clone(),
                    value: None,
                    records: recs,
                    record_key_a: None,
                    record_key_b: None,
                });
            }
        }
        let query = if reused[i] {
            stats.push("published_pairs_reused", &rule.name, 1.0);
            sql::published_pairs(config, i)
        } else {
            sql::blocked_pairs(config, i)
        };
        if let Some(kept) = kept.as_mut() {
            let rows = kept.write_rule(ctx, config, tf_index, i, &query).await?;
            rule_ends.push(0);
            stats.push("compared_pairs", &rule.name, rows as f64);
            stats.push("pairs_kept_on_cluster", &rule.name, rows as f64);
            tracing::debug!(
                rule = rule.name,
                pairs = rows,
                "identity blocking, kept on the cluster"
            );
            continue;
        }
        let df = ctx
            .sql(&query)
            .await
            .map_err(|e| identity_err(format!("blocking rule `{}`: {e}", rule.name)))?;
        let mut stream = df.execute_stream().await?;
        let before = pairs.len();
        while let Some(batch) = stream.next().await {
            let b =
                batch.map_err(|e| identity_err(format!("blocking rule `{}`: {e}", rule.name)))?;
            let (a, bb) = (i64s(&b, "a")?, i64s(&b, "b")?);
            let g: Vec<Int8Array> = config
                .comparisons
                .iter()
                .map(|c| {
                    column(&b, &format!("gamma_{}", c.name), &DataType::Int8).map(|a| {
                        a.as_any()
                            .downcast_ref::<Int8Array>()
                            .expect("int8")
                            .clone()
                    })
                })
                .collect::<Result<_>>()?;
            let t: Vec<Float64Array> = config
                .comparisons
                .iter()
                .zip(tf_index)
                .filter(|(_, k)| k.is_some())
                .map(|(c, _)| {
                    column(&b, &format!("tf_{}", c.name), &DataType::Float64).map(|a| {
                        a.as_any()
                            .downcast_ref::<Float64Array>()
                            .expect("f64")
                            .clone()
                    })
                })
                .collect::<Result<_>>()?;
            for r in 0..b.num_rows() {
                pairs.push(Pair {
                    a: a.value(r) as u32,
                    b: bb.value(r) as u32,
                });
                gammas.extend(g.iter().map(|g| if g.is_null(r) { -1 } else { g.value(r) }));
                for t in &t {
                    tfs.push(if t.is_null(r) { f64::NAN } else { t.value(r) });
                }
            }
            budget.hold(
                Part::Pairs,
                pairs.capacity() * size_of::<Pair>() + gammas.capacity() + tfs.bytes(),
                &format!("blocking rule `{}`", rule.name),
            )?;
        }
        // In (a, b) order, whatever order the join or the published table gave them: the
        // same pairs make the same arrays, so the sums over them (the prior, the model's
        // passes) come out the same to the last bit on every run.
        let tf_count = tf_index.iter().flatten().count();
        let held = pairs.capacity() * size_of::<Pair>() + gammas.capacity() + tfs.bytes();
        // The order and a flag per pair, while sorting.
        let sorting = (pairs.len() - before) * (size_of::<u32>() + 1);
        let what = format!("sorting the pairs of blocking rule `{}`", rule.name);
        budget.hold(Part::Pairs, held + sorting, &what)?;
        sort_pairs(
            &mut pairs[before..],
            &mut gammas[before * config.comparisons.len()..],
            &mut tfs.codes[before * tf_count..],
            config.comparisons.len(),
            tf_count,
        );
        budget.hold(Part::Pairs, held, &what)?;
        rule_ends.push(pairs.len());
        stats.push("compared_pairs", &rule.name, (pairs.len() - before) as f64);
        tracing::debug!(
            rule = rule.name,
            pairs = pairs.len(),
            identity_mib = budget.reservation.size() >> 20,
            "identity blocking"
        );
    }
    Ok(Compared {
        pairs,
        gammas,
        tfs,
        rule_ends,
        reused_rules: 0,
        kept,
    })
}
/// Statistics of the clusters: records and match rate per source (the share of its records
/// in a customer that other sources also hold), cluster sizes, the largest customers, guard
/// values, stable-id events.
pub(super) fn cluster_stats(
    stats: &mut Stats,
    sources: &StringArray,
    member_lists: &[&Vec<u32>],
    customer_of: &[usize],
    assignment: &ids::Assignment,
    guard_rows: &[GuardRow],
) {
    let mut per_source: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let multi_source: Vec<bool> = member_lists
        .iter()
        .map(|m| {
            let first = sources.value(m[0] as usize);
            m.iter().any(|&r| sources.value(r as usize) != first)
        })
        .collect();
    for r in 0..customer_of.len() {
        let e = per_source.entry(sources.value(r)).or_default();
        e.0 += 1;
        if multi_source[customer_of[r]] {
            e.1 += 1;
        }
    }
    stats.push("records", "all", customer_of.len() as f64);
    stats.push("customers", "all", member_lists.len() as f64);
    for (source, (count, matched)) in &per_source {
        stats.push("records", source, *count as f64);
        stats.push(
            "match_rate",
            source,
            *matched as f64 / (*count).max(1) as f64,
        );
    }
    let mut sizes: BTreeMap<usize, u64> = BTreeMap::new();
    for m in member_lists {
        *sizes.entry(m.len()).or_default() += 1;
    }
    for (size, count) in &sizes {
        stats.push("cluster_size", &size.to_string(), *count as f64);
    }
    let mut largest: Vec<(usize, usize)> = member_lists
        .iter()
        .enumerate()
        .map(|(c, m)| (m.len(), c))
        .collect();
    largest.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
    for (size, c) in largest.iter().take(10) {
        stats.push("largest_cluster", &assignment.ids[*c].0, *size as f64);
    }
    for g in guard_rows {
        if g.guard.ends_with("_value") {
            stats.push("guard_values", &format!("{}:{}", g.subject, g.guard), 1.0);
        }
    }
    for e in &assignment.events {
        stats.push("id_events", e.event, 1.0);
    }
}

/// Step 11: `record_customer`: each record's customer id, when the id was issued, its customer's
/// size and what linked it.
#[allow(clippy::too_many_arguments)] // the outputs of steps 2, 8 and 9 it joins, by name
pub(super) fn record_customer_table(
    config: &IdentityConfig,
    kinds: &Kinds,
    record_keys: &StringArray,
    sources: &StringArray,
    member_lists: &[&Vec<u32>],
    customer_of: &[usize],
    assignment: &ids::Assignment,
    linked_by: &[Option<u16>],
    run_id: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let n = customer_of.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("record_key", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new(
            "customer_created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("cluster_size", DataType::Int64, false),
        Field::new("linked_by", DataType::Utf8, true),
        Field::new("run_id", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(record_keys.clone()),
            Arc::new(sources.clone()),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|r| assignment.ids[customer_of[r]].0.as_str()),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|r| assignment.ids[customer_of[r]].1),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|r| member_lists[customer_of[r]].len() as i64),
            )),
            Arc::new(StringArray::from_iter(linked_by.iter().map(|k| {
                Some(k.map_or("singleton".to_string(), |k| kinds.name(k, config)))
            }))),
            run_column(run_id, n),
        ],
    )?;
    Ok((schema, vec![batch]))
}

/// Step 11: `match_term_frequencies`: the frequencies the model was trained with (`trained_by`).
pub(super) async fn term_frequency_table(
    ctx: &SessionContext,
    config: &IdentityConfig,
    trained_by: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("comparison", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("frequency", DataType::Float64, false),
        Field::new("trained_run_id", DataType::Utf8, false),
    ]));
    let mut batches = Vec::new();
    for (i, c) in config.comparisons.iter().enumerate() {
        if !(c.term_frequency && c.column.is_some()) {
            continue;
        }
        let q = format!(
            "select {name} as comparison, cast(value as varchar) as value, frequency, {run} as trained_run_id \
                 from {t} where value is not null",
            name = sql::literal(&c.name),
            run = sql::literal(trained_by),
            t = sql::tf_table(i)
        );
        for b in collect(ctx, &q, "term frequencies").await? {
            let columns = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            batches.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
    }
    Ok((schema, batches))
}

/// Step 2: the labelled records' labels, by rid (`label_column`; empty without one).
pub(super) fn labels_by_rid(
    config: &IdentityConfig,
    key_batches: &[RecordBatch],
    n: usize,
) -> Result<Vec<Option<u32>>> {
    Ok(match &config.label_column {
        None => Vec::new(),
        Some(label) => {
            let mut out = vec![None; n];
            let mut ids: HashMap<String, u32> = HashMap::new();
            for b in key_batches {
                let (rid, values) = (i64s(b, "rid")?, strs(b, label)?);
                for r in 0..b.num_rows() {
                    if values.is_valid(r) {
                        let next = ids.len() as u32;
                        out[rid.value(r) as usize] =
                            Some(*ids.entry(values.value(r).to_string()).or_insert(next));
                    }
                }
            }
            out
        }
    })
}

/// Step 2: the values of the identifiers unique per customer, numbered per column, by rid.
pub(super) fn unique_values(
    key_batches: &[RecordBatch],
    unique_columns: &[&str],
    n: usize,
) -> Result<cluster::Uniques> {
    let mut unique = cluster::Uniques::new(n, unique_columns.len());
    let mut unique_values: Vec<HashMap<String, u32>> = vec![HashMap::new(); unique_columns.len()];
    for b in key_batches {
        let rid = i64s(b, "rid")?;
        for (u, c) in unique_columns.iter().enumerate() {
            let values = strs(b, c)?;
            for r in 0..b.num_rows() {
                if values.is_valid(r) {
                    let next = unique_values[u].len() as u32;
                    let v = *unique_values[u]
                        .entry(values.value(r).to_string())
                        .or_insert(next);
                    unique.set(rid.value(r) as usize, u, v);
                }
            }
        }
    }
    Ok(unique)
}

/// Step 2: the keys table the joins read: the rid and the matching columns only.
pub(super) fn matching_keys(
    key_batches: Vec<RecordBatch>,
    config: &IdentityConfig,
    columns: &[String],
) -> Result<(Vec<RecordBatch>, SchemaRef)> {
    let matching = config.matching_columns(columns);
    let key_batches = key_batches
        .into_iter()
        .map(|b| {
            let kept: Vec<usize> = b
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| f.name() == "rid" || matching.contains(f.name()))
                .map(|(i, _)| i)
                .collect();
            b.project(&kept)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let keys_schema = match key_batches.first() {
        Some(b) => b.schema(),
        None => {
            let mut fields = vec![Field::new("rid", DataType::Int64, false)];
            for c in &matching {
                fields.push(Field::new(c, DataType::Utf8, true));
            }
            Arc::new(Schema::new(fields))
        }
    };
    Ok((key_batches, keys_schema))
}

/// Pairs of records, by rid.
pub(super) type RidPairs = Vec<(u32, u32)>;

/// Step 6: the record pairs of `always_match` and `never_match`, by rid; a pair naming a record the
/// run does not have is reported as a guard hit, not an error.
pub(super) fn override_pairs(
    config: &IdentityConfig,
    record_keys: &StringArray,
    guard_rows: &mut Vec<GuardRow>,
) -> (RidPairs, RidPairs) {
    let n = record_keys.len();
    // The rids of the override lists' record keys, found in one pass over the keys.
    let rid_of: HashMap<&str, u32> = {
        let wanted: HashSet<&str> = config
            .always_match
            .iter()
            .chain(&config.never_match)
            .flatten()
            .map(String::as_str)
            .collect();
        (0..n)
            .filter(|&r| !wanted.is_empty() && wanted.contains(record_keys.value(r)))
            .map(|r| (record_keys.value(r), r as u32))
            .collect()
    };
    let override_rids = |list: &[[String; 2]], what: &str, guard_rows: &mut Vec<GuardRow>| {
        let mut out = Vec::new();
        for [a, b] in list {
            match (rid_of.get(a.as_str()), rid_of.get(b.as_str())) {
                (Some(&x), Some(&y)) => out.push((x, y)),
                _ => guard_rows.push(GuardRow {
                    guard: format!("{what}_unknown_record"),
                    subject: what.to_string(),
                    value: None,
                    records: 0,
                    record_key_a: Some(a.clone()),
                    record_key_b: Some(b.clone()),
                }),
            }
        }
        out
    };
    (
        override_rids(&config.always_match, "always_match", guard_rows),
        override_rids(&config.never_match, "never_match", guard_rows),
    )
}

/// Step 6: the comparison patterns of the known matches (`always_match` pairs, records sharing a
/// label), counted in m as they are.
pub(super) async fn labelled_matches(
    ctx: &SessionContext,
    config: &IdentityConfig,
    key_rows: &KeyRows,
    always: &[(u32, u32)],
    labels: &[Option<u32>],
    stats: &mut Stats,
) -> Result<model::Patterns> {
    let comparisons = config.comparisons.len();
    let mut matched: Vec<(u32, u32)> = always.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
    if !labels.is_empty() {
        let mut groups: HashMap<u32, Vec<u32>> = HashMap::new();
        for (rid, label) in labels.iter().enumerate() {
            if let Some(label) = label {
                groups.entry(*label).or_default().push(rid as u32);
            }
        }
        for members in groups.values() {
            // A label held by hundreds of records is a mistake or a placeholder: its
            // first members are enough to learn from.
            let members = &members[..members.len().min(MAX_LABEL_GROUP)];
            for (i, &a) in members.iter().enumerate() {
                for &b in &members[i + 1..] {
                    matched.push((a.min(b), a.max(b)));
                }
            }
        }
    }
    matched.sort_unstable();
    matched.dedup();
    matched.truncate(config.u_sample_pairs.max(1));
    let mut patterns = model::Patterns::new();
    if !matched.is_empty() {
        let count = matched.len();
        let sample =
            Sample::levels_of(ctx, config, key_rows, matched, "comparing labelled pairs").await?;
        for p in 0..count {
            let vector = sample.gammas[p * comparisons..(p + 1) * comparisons].to_vec();
            patterns.entry(vector).or_default().0 += 1;
        }
        stats.push("labelled_matches", "all", count as f64);
    }
    Ok(patterns)
}

/// Step 7–8: what scores the compared pairs with a model and clusters the accepted ones (with the
/// rules' and overrides' links, the unique identifiers, `never_match` and the contradicted
/// pairs), once per model pass.
pub(super) struct Scorer<'a> {
    pub(super) config: &'a IdentityConfig,
    /// Records.
    pub(super) n: usize,
    pub(super) kinds: &'a Kinds,
    pub(super) pairs: &'a [Pair],
    pub(super) gammas: &'a [i8],
    pub(super) tfs: &'a Frequencies,
    /// On a cluster, the pairs kept there (`pairs`, `gammas` and `tfs` are empty).
    pub(super) kept: Option<&'a kept::KeptPairs>,
    pub(super) tf_index: &'a [Option<usize>],
    pub(super) fixed_links: &'a [cluster::Link],
    pub(super) unique: &'a cluster::Uniques,
    pub(super) never: &'a [(u32, u32)],
}

impl Scorer<'_> {
    /// Each pair's weight and probability, the links (fixed and accepted) and the clusters.
    /// Past `max_union_find_links` links, the links are written as a table and clustered with
    /// connected components in SQL ([`components`]): the links returned are then the fixed
    /// ones only (the accepted ones are counted in [`cluster::Clusters::accepted`]).
    pub(super) async fn score_and_cluster(
        &self,
        ctx: &SessionContext,
        model: &Model,
    ) -> Result<(Vec<f64>, Vec<cluster::Link>, cluster::Clusters)> {
        let comparisons = self.config.comparisons.len();
        let tf_count = self.tf_index.iter().flatten().count();
        let n = self.n;
        let mut weights = Vec::with_capacity(self.pairs.len());
        let mut sink = LinkSink {
            config: self.config,
            probabilistic: self.kinds.probabilistic(),
            pool: ctx.runtime_env().memory_pool.clone(),
            against: -self.config.cannot_link_bits + model.prior_weight(),
            links: self.fixed_links.to_vec(),
            fixed: self.fixed_links.len(),
            rows: None,
            accepted: 0,
            contradicted: Vec::new(),
        };
        match self.kept {
            // On a cluster: the pairs scored there, only the links coming back (a weight no
            // pair below could be accepted with, less a margin: the sink decides exactly).
            Some(kept) => {
                let t = self.config.threshold;
                let accept_from = if t >= 1.0 {
                    50.0
                } else if t <= 0.0 {
                    f64::NEG_INFINITY
                } else {
                    (t / (1.0 - t)).log2() - 1e-6
                };
                let filter = format!(
                    "w >= {} or w <= {}",
                    sql_float(accept_from),
                    sql_float(sink.against)
                );
                let mut scored = kept.scored(ctx, self.config, model, Some(&filter)).await?;
                while let Some(batch) = scored.next().await {
                    let batch = batch
                        .map_err(|e| identity_err(format!("scoring the compared pairs: {e}")))?;
                    let (a, b) = (i64s(&batch, "a")?, i64s(&batch, "b")?);
                    let w = column(&batch, "w", &DataType::Float64)?;
                    let w = w.as_any().downcast_ref::<Float64Array>().expect("f64");
                    for r in 0..batch.num_rows() {
                        sink.offer(a.value(r) as u32, b.value(r) as u32, w.value(r))?;
                    }
                }
            }
            None => {
                let weighs = model.weights();
                let mut pair_tfs: Vec<Option<f64>> = vec![None; self.tf_index.len()];
                for (p, pair) in self.pairs.iter().enumerate() {
                    let vector = &self.gammas[p * comparisons..(p + 1) * comparisons];
                    for (slot, k) in pair_tfs.iter_mut().zip(self.tf_index) {
                        *slot = k
                            .map(|k| self.tfs.get(p * tf_count + k))
                            .filter(|f| f.is_finite());
                    }
                    let (w, _) = weighs.score(vector, &pair_tfs);
                    weights.push(w);
                    sink.offer(pair.a, pair.b, w)?;
                }
            }
        }
        let LinkSink {
            links,
            rows,
            accepted,
            mut contradicted,
            ..
        } = sink;
        // In one order wherever the pairs came from (the guard reports the first it meets).
        contradicted.sort_unstable();
        let contradicted = cluster::Contradicted {
            pairs: &contradicted,
            refuses: self.kinds.probabilistic(),
        };
        let max_size = self.config.max_cluster_size;
        let mut result = match rows {
            None => cluster::cluster(
                n,
                links.clone(),
                self.unique.clone(),
                self.never,
                contradicted,
                max_size,
            ),
            Some(rows) => {
                tracing::debug!(
                    links = rows.len(),
                    budget = self.config.max_union_find_links,
                    "identity: clustering with connected components in SQL"
                );
                let (mut clusters, rounds) = components::cluster_in_sql(
                    ctx,
                    n,
                    rows,
                    self.unique.clone(),
                    self.never,
                    contradicted,
                    max_size,
                )
                .await?;
                clusters.sql_rounds = Some(rounds);
                clusters
            }
        };
        result.accepted = accepted;
        Ok((weights, links, result))
    }
}

/// The links of a scoring pass as the pairs' weights come: the accepted ones (probability at
/// least the threshold) kept for clustering, in a list or, past `max_union_find_links` or
/// what the memory limit leaves the union-find, as compact rows for the SQL components; the
/// contradicted ones (weight at most `against`) kept for the guard.
struct LinkSink<'a> {
    config: &'a IdentityConfig,
    probabilistic: u16,
    pool: Arc<dyn datafusion::execution::memory_pool::MemoryPool>,
    against: f64,
    links: Vec<cluster::Link>,
    /// The fixed links at the head of `links`.
    fixed: usize,
    rows: Option<components::LinkRows>,
    accepted: usize,
    contradicted: Vec<(u32, u32)>,
}

impl LinkSink<'_> {
    fn offer(&mut self, a: u32, b: u32, w: f64) -> Result<()> {
        if w <= self.against {
            self.contradicted.push((a, b));
        }
        let prob = score::probability(w);
        if prob < self.config.threshold {
            return Ok(());
        }
        self.accepted += 1;
        let link = cluster::Link {
            a,
            b,
            kind: self.probabilistic,
            strength: prob,
        };
        // Past the setting, or when the union-find's links would take more than the memory
        // limit leaves them (checked once per 65,536 links).
        let budget = self.config.max_union_find_links;
        let pool = self.pool.as_ref();
        let switch = |held: usize| {
            held >= budget
                || (held.is_multiple_of(65_536)
                    && !components::union_find_fits(pool, held + 65_536))
        };
        match self.rows.as_mut() {
            Some(rows) => rows.push(&link)?,
            None if switch(self.links.len()) => {
                let mut out = components::LinkRows::new(&self.pool);
                for l in self.links.iter().chain([&link]) {
                    out.push(l)?;
                }
                self.links.truncate(self.fixed);
                self.links.shrink_to_fit();
                self.rows = Some(out);
            }
            None => self.links.push(link),
        }
        Ok(())
    }
}

/// A float as an SQL literal that reads back to the same value.
fn sql_float(x: f64) -> String {
    if x.is_finite() {
        format!("{x:?}")
    } else if x > 0.0 {
        "cast('Infinity' as double)".into()
    } else {
        "cast('-Infinity' as double)".into()
    }
}

/// A model with its scores, links and clusters, the run that trained it, and what is wrong
/// with it (a reused model was diagnosed when it was trained).
pub(super) struct Fitted {
    pub(super) trained: Trained,
    pub(super) trained_by: String,
    pub(super) warnings: Vec<String>,
}

/// Steps 6–8: a stored model that still fits scores and clusters as it is (earlier pairs score
/// exactly as before); otherwise the model is trained ([`train`]), starting from the
/// deterministic rules' components and prior (their pairs over their assumed recall).
#[allow(clippy::too_many_arguments)] // train's inputs, the stored model and this run
pub(super) async fn fit(
    ctx: &SessionContext,
    key_rows: KeyRows,
    scorer: &Scorer<'_>,
    stored: Option<(Model, String)>,
    (sessions, labelled_matches): (&[model::Session], &model::Patterns),
    deterministic: Vec<u32>,
    run_id: &str,
    (budget, stats): (&mut Budget, &mut Stats),
) -> Result<Fitted> {
    let config = scorer.config;
    let linked_pairs = pairs_within(&deterministic);
    let rules_prior = model::prior(linked_pairs, scorer.n as u64, config.deterministic_recall);
    stats.push("deterministic_linked_pairs", "all", linked_pairs as f64);
    let start = (rules_prior, deterministic);
    let (trained, trained_by) = match stored {
        Some((model, trained_by)) => {
            key_rows.release(ctx, budget)?;
            stats.push("model", "reused", 1.0);
            let (weights, links, clusters) = scorer.score_and_cluster(ctx, &model).await?;
            ((model, weights, links, clusters), trained_by)
        }
        None => {
            let trained = train(
                ctx,
                key_rows,
                scorer,
                sessions,
                labelled_matches,
                start,
                budget,
                stats,
            )
            .await?;
            (trained, run_id.to_string())
        }
    };
    budget.hold(
        Part::Scores,
        scores_bytes(scorer.pairs.len(), trained.2.len(), scorer.n),
        "scoring the pairs",
    )?;
    let warnings = model_stats(
        &trained.0,
        &trained.3,
        config,
        (trained_by == run_id).then_some(rules_prior),
        stats,
    );
    Ok(Fitted {
        trained,
        trained_by,
        warnings,
    })
}

/// The model's statistics (accepted pairs, prior, EM iterations) and, for a model this run
/// trained (`rules_prior` given: the deterministic rules' prior it is checked against), what
/// is wrong with it ([`model::diagnose`]), logged and counted.
fn model_stats(
    model: &Model,
    clusters: &cluster::Clusters,
    config: &IdentityConfig,
    rules_prior: Option<f64>,
    stats: &mut Stats,
) -> Vec<String> {
    stats.push("accepted_pairs", "probabilistic", clusters.accepted as f64);
    if let Some(rounds) = clusters.sql_rounds {
        stats.push("connected_components_rounds", "sql", rounds as f64);
    }
    stats.push("model", "prior", model.lambda);
    stats.push("model", "em_iterations", model.iterations as f64);
    let warnings = rules_prior
        .map(|prior| model::diagnose(model, &config.comparisons, prior))
        .unwrap_or_default();
    for w in &warnings {
        // The run prints them under the job's line; the log keeps them at info.
        tracing::info!("identity: {w}");
        stats.push("model_warning", w, 1.0);
    }
    warnings
}

/// The links clustering refused, counted and listed among the guard hits; returns each
/// refused pair's reason for `match_pairs`.
pub(super) fn refused_links(
    refused: &[(cluster::Link, cluster::Refusal)],
    (kinds, config, unique_columns): (&Kinds, &IdentityConfig, &[&str]),
    record_keys: &StringArray,
    stats: &mut Stats,
    guard_rows: &mut Vec<GuardRow>,
) -> HashMap<(u32, u32), String> {
    let mut by_pair = HashMap::new();
    for (link, reason) in refused {
        let reason = reason.describe(unique_columns);
        stats.push("refused_links", &reason, 1.0);
        guard_rows.push(GuardRow {
            guard: reason.clone(),
            subject: kinds.name(link.kind, config),
            value: None,
            records: 2,
            record_key_a: Some(record_keys.value(link.a as usize).to_string()),
            record_key_b: Some(record_keys.value(link.b as usize).to_string()),
        });
        by_pair.insert((link.a.min(link.b), link.a.max(link.b)), reason);
    }
    by_pair
}

/// The records of each customer (by rid, ascending), customers in the order of their
/// smallest record.
pub(super) fn members(component: &[u32]) -> Vec<Vec<u32>> {
    let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (r, &c) in component.iter().enumerate() {
        members.entry(c).or_default().push(r as u32);
    }
    members.into_values().collect()
}

/// What resolution decided, made into the output tables (step 11).
pub(super) struct Decided<'a> {
    pub(super) record_keys: StringArray,
    pub(super) sources: StringArray,
    pub(super) member_lists: &'a [&'a Vec<u32>],
    pub(super) customer_of: &'a [usize],
    pub(super) assignment: &'a ids::Assignment,
    pub(super) linked_by: &'a [Option<u16>],
    pub(super) compared: Compared,
    pub(super) weights: Vec<f64>,
    pub(super) links: &'a [cluster::Link],
    pub(super) refused: HashMap<(u32, u32), String>,
    pub(super) model: &'a Model,
    pub(super) trained_by: &'a str,
    pub(super) guard_rows: Vec<GuardRow>,
    pub(super) stats: Stats,
}

impl Decided<'_> {
    /// Steps 10–11: the statistics of the clusters ([`cluster_stats`]), then the output
    /// tables, each reserved in the identity budget until written (`match_pairs` is streamed
    /// from the pairs and scores, which move into it).
    pub(super) async fn tables(
        mut self,
        ctx: &SessionContext,
        config: &IdentityConfig,
        (kinds, tf_index): (&Kinds, &[Option<usize>]),
        budget: &mut Budget,
        run_id: &str,
        now_micros: i64,
    ) -> Result<Vec<(&'static str, Arc<dyn TableProvider>)>> {
        let n = self.customer_of.len();
        cluster_stats(
            &mut self.stats,
            &self.sources,
            self.member_lists,
            self.customer_of,
            self.assignment,
            &self.guard_rows,
        );
        let record_customer = record_customer_table(
            config,
            kinds,
            &self.record_keys,
            &self.sources,
            self.member_lists,
            self.customer_of,
            self.assignment,
            self.linked_by,
            run_id,
        )?;
        let match_pairs = PairsTable::new(
            config,
            self.record_keys.clone(),
            self.compared,
            tf_index,
            self.weights,
            self.links,
            self.refused,
        )
        .scored_by(ctx, self.model);
        tracing::debug!(
            rows = match_pairs.rows(),
            "identity: unify.match_pairs is streamed"
        );
        // What the job holds until the tables are written: record_customer, and what
        // match_pairs is made from (the record keys are shared by both).
        budget.hold(Part::Pairs, 0, "handing the pairs to unify.match_pairs")?;
        budget.hold(Part::Scores, 0, "handing the scores to unify.match_pairs")?;
        budget.hold(
            Part::Records,
            self.record_keys.get_array_memory_size() + self.sources.get_array_memory_size(),
            "keeping the record keys",
        )?;
        budget.hold(
            Part::Output,
            batches_size(&record_customer.1) + match_pairs.bytes(),
            "building unify.record_customer",
        )?;
        let match_model = model_table(config, self.model, run_id, self.trained_by, n)?;
        let term_frequencies = term_frequency_table(ctx, config, self.trained_by).await?;
        let history = history_table(&self.assignment.events, run_id, now_micros)?;
        let guards = guard_table(&self.guard_rows, run_id)?;
        let stats_table = self.stats.table(run_id, now_micros)?;
        Ok(vec![
            ("record_customer", in_memory(record_customer)?),
            (
                "match_pairs",
                match_pairs.provider(ctx.copied_config().target_partitions())?,
            ),
            ("match_model", in_memory(match_model)?),
            ("match_term_frequencies", in_memory(term_frequencies)?),
            ("customer_id_history", in_memory(history)?),
            ("identity_guard_hits", in_memory(guards)?),
            ("identity_stats", in_memory(stats_table)?),
        ])
    }
}

/// A trained model with the weights, links and clusters of its best pass.
pub(super) type Trained = (Model, Vec<f64>, Vec<cluster::Link>, cluster::Clusters);

/// Step 6–8: trains the model in passes: u from random pairs that are not in one customer (exact
/// levels counted exactly), m by EM over the blocking rules' sessions and the labelled
/// matches, the prior from the pairs inside customers; each pass scores and clusters, and the
/// next starts from what the clusters say, until they settle (at most `MAX_PASSES`).
/// `start` is the first prior and the deterministic rules' components.
#[allow(clippy::too_many_arguments)] // the outputs of steps 2–6, by name
pub(super) async fn train(
    ctx: &SessionContext,
    key_rows: KeyRows,
    scorer: &Scorer<'_>,
    sessions: &[model::Session],
    labelled_matches: &model::Patterns,
    start: (f64, Vec<u32>),
    budget: &mut Budget,
    stats: &mut Stats,
) -> Result<Trained> {
    let config = scorer.config;
    let (pairs, gammas, n) = (scorer.pairs, scorer.gammas, scorer.n);
    let comparisons = config.comparisons.len();
    let levels: Vec<usize> = config.comparisons.iter().map(|c| c.levels.len()).collect();
    let (mut lambda, mut component) = start;
    super::stage("counting exact levels");
    let counted = counted_levels(ctx, config).await?;
    super::stage("sampling pairs for u");
    let sample = Sample::draw(ctx, config, &key_rows).await?;
    key_rows.release(ctx, budget)?;
    tracing::debug!(pairs = sample.pairs.len(), "identity stage: model passes");
    crate::session::return_freed_memory();
    // Where each sampled pair is among the compared ones (in memory: its index; on a
    // cluster: its levels, scored here with each pass's model).
    let (compared, sampled) = match scorer.kept {
        Some(kept) => (
            Vec::new(),
            kept.sampled(ctx, config, scorer.tf_index, &sample.pairs)
                .await?,
        ),
        None => (sample.compared(pairs), HashMap::new()),
    };
    let all = (n as f64) * (n as f64 - 1.0) / 2.0;
    let mut passes = 0;
    let mut links_before = 0;
    // The sums over the pairs across components that the first pass starts from: the
    // deterministic components, no scores yet.
    let mut across = match scorer.kept {
        Some(kept) => kept.across(ctx, config, &component, None, &counted).await?,
        None => Across::of(pairs, gammas, comparisons, &component, &[], &counted),
    };
    // The last pass's model, weights, links and clusters; its weights start the next.
    let mut best: Option<Trained> = None;
    while passes < MAX_PASSES {
        passes += 1;
        let u_counts = match (&best, scorer.kept) {
            (None, _) => sample.u_counts(config, &component, |_| None),
            (Some(best), None) => sample.u_counts(config, &component, |s| {
                best.1
                    .get(compared[s] as usize)
                    .map(|&w| score::probability(w))
            }),
            (Some(best), Some(_)) => {
                let weighs = best.0.weights();
                sample.u_counts(config, &component, |s| {
                    sampled
                        .get(&s)
                        .map(|(g, t)| score::probability(weighs.score(g, t).0))
                })
            }
        };
        let mut u = model::u_from_counts(&u_counts);
        for (level, &agreeing) in counted.iter().zip(&across.agreeing) {
            level.apply(&mut u, agreeing);
        }
        let mut trained = model::train_with_labels(
            sessions,
            labelled_matches,
            &levels,
            u,
            lambda,
            config.em_max_iterations,
        );
        if passes == 1 && all > 0.0 && trained.matched_pairs > 0.0 {
            // The first prior is EM's: the matches it expects among all compared pairs
            // (each blocking rule's share of matches times its pairs), over all pairs.
            // The deterministic rules' count over a guessed recall only starts EM and
            // checks it (a prior far from it is a warning).
            lambda = (trained.matched_pairs / all).clamp(1e-12, 0.5);
            trained.lambda = lambda;
        }
        // One pass's scores at a time: the last ones are no longer read.
        drop(best.take());
        let (weights, links, result) = scorer.score_and_cluster(ctx, &trained).await?;
        let linked = scorer.fixed_links.len() + result.accepted;
        let stable = result.component == component && linked == links_before;
        links_before = linked;
        component = result.component.clone();
        across = match scorer.kept {
            Some(kept) => {
                kept.across(ctx, config, &component, Some(&trained), &counted)
                    .await?
            }
            None => Across::of(pairs, gammas, comparisons, &component, &weights, &counted),
        };
        let next = if all > 0.0 {
            ((pairs_within(&component) as f64 + across.matches) / all).clamp(1e-12, 0.5)
        } else {
            0.5
        };
        let settled = stable && (next - lambda).abs() <= 0.01 * lambda;
        lambda = next;
        budget.hold(
            Part::Scores,
            scores_bytes(pairs.len(), links.len(), n)
                + sample.pairs.len() * (size_of::<(u32, u32)>() + comparisons)
                + compared.len() * size_of::<u32>(),
            "scoring the pairs",
        )?;
        best = Some((trained, weights, links, result));
        if settled {
            break;
        }
    }
    stats.push("model", "passes", passes as f64);
    Ok(best.expect("at least one pass"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringViewArray;

    /// Records numbered by key in byte order across batches whose keys are plain and view
    /// strings, a NULL key last; the batches keep their row order, and the keys and sources
    /// come out indexed by rid.
    #[test]
    fn records_are_numbered_by_key_across_batches_of_either_string_type() {
        let schema = |key: DataType| {
            Arc::new(Schema::new(vec![
                Field::new("record_key", key, true),
                Field::new("source", DataType::Utf8, false),
            ]))
        };
        let plain = RecordBatch::try_new(
            schema(DataType::Utf8),
            vec![
                Arc::new(StringArray::from(vec![Some("pos:2"), None, Some("crm:b")])),
                Arc::new(StringArray::from(vec!["pos", "web", "crm"])),
            ],
        )
        .unwrap();
        let views = RecordBatch::try_new(
            schema(DataType::Utf8View),
            vec![
                Arc::new(StringViewArray::from(vec![
                    Some("crm:a"),
                    Some("Crm:z"),
                    Some("pos:10"),
                ])),
                Arc::new(StringArray::from(vec!["crm", "crm", "pos"])),
            ],
        )
        .unwrap();
        let numbered = number_by_record_key(vec![plain, views]).unwrap();
        let rids: Vec<i64> = numbered
            .batches
            .iter()
            .flat_map(|b| i64s(b, "rid").unwrap().values().to_vec())
            .collect();
        // Byte order: "Crm:z" < "crm:a" < "crm:b" < "pos:10" < "pos:2"; NULL last.
        assert_eq!(rids, vec![4, 5, 2, 1, 0, 3]);
        let keys: Vec<Option<&str>> = numbered.record_keys.iter().collect();
        assert_eq!(
            keys,
            vec![
                Some("Crm:z"),
                Some("crm:a"),
                Some("crm:b"),
                Some("pos:10"),
                Some("pos:2"),
                None
            ]
        );
        let sources: Vec<&str> = numbered.sources.iter().map(|s| s.unwrap()).collect();
        assert_eq!(sources, vec!["crm", "crm", "crm", "pos", "pos", "web"]);
        assert_eq!(numbered.batches[0].num_columns(), 3);
    }

    #[test]
    fn sorting_pairs_moves_their_levels_and_frequencies_with_them() {
        // Pairs in a scrambled order (a permutation with cycles of several lengths and fixed
        // points), each carrying levels and frequencies derived from it.
        let keys: Vec<(u32, u32)> = vec![
            (5, 9),
            (1, 2),
            (3, 4),
            (0, 7),
            (1, 1),
            (9, 12),
            (0, 3),
            (2, 8),
            (1, 5),
        ];
        let mut pairs: Vec<Pair> = keys.iter().map(|&(a, b)| Pair { a, b }).collect();
        let mut gammas: Vec<i8> = keys
            .iter()
            .flat_map(|&(a, b)| [a as i8, b as i8, -1])
            .collect();
        let mut tfs = Frequencies::default();
        for &(a, b) in &keys {
            tfs.push(a as f64 + b as f64 / 100.0);
            tfs.push(f64::NAN);
        }
        sort_pairs(&mut pairs, &mut gammas, &mut tfs.codes, 3, 2);
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        let got: Vec<(u32, u32)> = pairs.iter().map(|p| (p.a, p.b)).collect();
        assert_eq!(got, sorted);
        for (k, &(a, b)) in sorted.iter().enumerate() {
            assert_eq!(&gammas[k * 3..k * 3 + 3], &[a as i8, b as i8, -1]);
            assert_eq!(tfs.get(k * 2), a as f64 + b as f64 / 100.0);
            assert!(tfs.get(k * 2 + 1).is_nan());
        }
        // Frequencies read back to the bit, each distinct value held once.
        let mut f = Frequencies::default();
        for v in [0.25, -0.0, 0.0, 1e-300, 0.25, f64::INFINITY, 0.1 + 0.2] {
            f.push(v);
        }
        let back: Vec<u64> = (0..7).map(|i| f.get(i).to_bits()).collect();
        let nan = f64::NAN.to_bits();
        let expected = [0.25, -0.0, 0.0, 1e-300, 0.25, f64::NAN, 0.1 + 0.2];
        for (got, want) in back.iter().zip(expected) {
            assert!(*got == want.to_bits() || (want.is_nan() && *got == nan));
        }
        assert_eq!(f.values.len(), 5);
        // Nothing to sort: no pair, no level.
        sort_pairs(&mut [], &mut [], &mut [], 3, 0);
    }
}
