//! The SQL the pipeline runs: guarded keys, deterministic groups, blocking joins, comparison
//! vectors. `tessera compile` shows it; every query reads the registered `__id_keys` table.

use super::config::{Comparison, Identifier, IdentityConfig, KeyRule};

/// The table of guarded, numbered records every query below reads.
pub const KEYS: &str = "__id_keys";

pub use crate::sql::{ident, literal};

/// The guard table of identifier `i` (values not used for matching).
pub fn guard_table(i: usize) -> String {
    format!("__id_guard_{i}")
}

/// The term-frequency table of comparison `i`.
pub fn tf_table(i: usize) -> String {
    format!("__id_tf_{i}")
}

/// Values of an identifier that guards exclude: blocked, or shared by too many records.
/// (Values that different people share, by `shared_when`, are split by person instead: see
/// [`holder_pairs`].)
pub fn guard_hits(records: &str, id: &Identifier) -> String {
    format!(
        "select value, records, case when blocked then 'blocked_value' else 'over_shared_value' end as reason \
         from ({}) v where blocked or over",
        value_counts(records, id)
    )
}

/// Per value of an identifier: its records, whether it is a blocked value and whether it is
/// held by more records than the guard allows.
fn value_counts(records: &str, id: &Identifier) -> String {
    let c = ident(&id.column);
    let blocked_list = if id.blocked_values.is_empty() {
        "false".to_string()
    } else {
        format!(
            "{c} in ({})",
            id.blocked_values
                .iter()
                .map(|v| literal(v))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let over = id
        .max_records_per_value
        .map_or("false".to_string(), |m| format!("count(*) > {m}"));
    format!(
        "select cast({c} as varchar) as value, count(*) as records, \
         bool_or({blocked_list}) as blocked, {over} as over from {records} \
         where {c} is not null group by {c}"
    )
}

/// Every pair of records holding the same value of an identifier with a `shared_when`
/// predicate (values the other guards keep, held by two records or more), and whether the
/// predicate tells the two apart (`differ`). The holders of a value are then grouped by person
/// (see `guards::split`), so one disagreeing pair does not decide for the whole value.
pub fn holder_pairs(records: &str, id: &Identifier, predicate: &str) -> String {
    let c = ident(&id.column);
    format!(
        "with v as ({values}), \
         candidates as (select value from v where not blocked and not over and records > 1) \
         select cast(l.{c} as varchar) as value, cast(l.record_key as varchar) as a, \
         cast(r.record_key as varchar) as b, coalesce(({predicate}), false) as differ \
         from {records} l join {records} r on l.{c} = r.{c} and l.record_key < r.record_key \
         join candidates k on k.value = cast(l.{c} as varchar)",
        values = value_counts(records, id)
    )
}

/// The table of records whose value of identifier `i` was split by person (`record_key`, and
/// the value the record matches with: the value and its holder group, or NULL when the record
/// could be any of the value's people).
pub fn split_table(i: usize) -> String {
    format!("__id_split_{i}")
}

/// Whether an identifier has a guard (its guard table exists).
pub fn guarded(id: &Identifier) -> bool {
    id.max_records_per_value.is_some() || !id.blocked_values.is_empty() || id.shared_when.is_some()
}

/// The records (numbered by record key, `rid`, once collected: see `resolve`), guarded
/// identifiers set to NULL: the record key,
/// the source and the columns the matching reads (see
/// [`IdentityConfig::matching_columns`]), nothing else.
///
/// A record holding a value that different people share (`shared_when`) matches with the value
/// of its holder group (see [`split_table`]); `text_splits` lists the identifiers whose column is
/// text (a split value of another type is set to NULL).
pub fn keys(
    records: &str,
    columns: &[String],
    config: &IdentityConfig,
    text_splits: &[usize],
) -> String {
    let guarded: Vec<(usize, &str)> = config
        .identifiers
        .iter()
        .enumerate()
        .filter(|(_, i)| guarded(i))
        .map(|(n, i)| (n, i.column.as_str()))
        .collect();
    let mut kept = vec!["record_key".to_string(), "source".to_string()];
    for c in config.matching_columns(columns) {
        if !kept.contains(&c) {
            kept.push(c);
        }
    }
    let select: Vec<String> = kept
        .iter()
        .map(|c| match guarded.iter().find(|(_, g)| g == c) {
            Some((n, _)) if config.identifiers[*n].shared_when.is_some() => format!(
                "case when g{n}.value is not null then null \
                 when s{n}.record_key is not null then {split} else rec.{q} end as {q}",
                q = ident(c),
                split = if text_splits.contains(n) {
                    format!("s{n}.value")
                } else {
                    "null".into()
                }
            ),
            Some((n, _)) => format!(
                "case when g{n}.value is null then rec.{q} end as {q}",
                q = ident(c)
            ),
            None => format!("rec.{}", ident(c)),
        })
        .collect();
    let joins: String = guarded
        .iter()
        .map(|(n, c)| {
            let mut join = format!(
                " left join {t} g{n} on cast(rec.{q} as varchar) = g{n}.value",
                t = guard_table(*n),
                q = ident(c)
            );
            if config.identifiers[*n].shared_when.is_some() {
                join.push_str(&format!(
                    " left join {t} s{n} on s{n}.record_key = cast(rec.record_key as varchar)",
                    t = split_table(*n)
                ));
            }
            join
        })
        .collect();
    // No `row_number() over (order by record_key)`: a window over one global order sorts every
    // record with all its columns in one partition, which at 10M records asked the sorter for
    // gigabytes at once. The records stream out unordered; `resolve` numbers them by sorting
    // the record keys alone.
    format!("select {} from {records} rec{joins}", select.join(", "))
}

/// Each record of a deterministic group with the group's smallest `rid`.
pub fn rule_groups(rule: &KeyRule) -> String {
    let on: Vec<String> = rule.on.iter().map(|c| ident(c)).collect();
    format!(
        "select rid, min(rid) over (partition by {p}) as root from {KEYS} where {nn}",
        p = on.join(", "),
        nn = not_null(&rule.on, None)
    )
}

fn not_null(columns: &[String], alias: Option<&str>) -> String {
    let prefix = alias.map(|a| format!("{a}.")).unwrap_or_default();
    columns
        .iter()
        .map(|c| format!("{prefix}{} is not null", ident(c)))
        .collect::<Vec<_>>()
        .join(" and ")
}

fn equal(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("l.{q} = r.{q}", q = ident(c)))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The blocks of a blocking rule larger than the cap: how many, their records and the pairs
/// left uncompared.
pub fn mega_blocks(rule: &KeyRule, cap: usize) -> String {
    let on: Vec<String> = rule.on.iter().map(|c| ident(c)).collect();
    format!(
        "select count(*) as blocks, coalesce(sum(n), 0) as records, \
         coalesce(sum(n * (n - 1) / 2), 0) as pairs from \
         (select count(*) as n from {KEYS} where {nn} group by {p} having count(*) > {cap})",
        nn = not_null(&rule.on, None),
        p = on.join(", ")
    )
}

/// The comparison vector of one comparison: -1 for the null level, then the levels in order,
/// then `else`.
pub fn gamma(c: &Comparison) -> String {
    let mut case = String::from("case");
    if let Some(null) = &c.null_when {
        case.push_str(&format!(" when {null} then -1"));
    } else if let Some(col) = &c.column {
        let q = ident(col);
        case.push_str(&format!(" when l.{q} is null or r.{q} is null then -1"));
    }
    for (i, level) in c.levels.iter().enumerate() {
        case.push_str(&format!(" when {} then {i}", level.when));
    }
    case.push_str(&format!(" else {} end", c.levels.len()));
    format!("cast({case} as tinyint)")
}

/// The comparison columns of a pair of records aliased `l` and `r`: `gamma_<name>` for every
/// comparison and `tf_<name>` (the relative frequency of the left value, a column of the keys
/// table: see [`record_frequencies`]) for those with term frequencies.
pub fn comparison_columns(config: &IdentityConfig) -> String {
    let mut select = Vec::new();
    for (i, c) in config.comparisons.iter().enumerate() {
        select.push(format!(
            "{} as {}",
            gamma(c),
            ident(&format!("gamma_{}", c.name))
        ));
        if c.term_frequency && c.column.is_some() {
            select.push(format!(
                "l.{} as {}",
                ident(&frequency_column(i)),
                ident(&format!("tf_{}", c.name))
            ));
        }
    }
    select.join(", ")
}

/// The keys table's column holding the frequency of a record's value of comparison `i`.
pub fn frequency_column(i: usize) -> String {
    format!("__tf_{i}")
}

/// Each record's frequencies (`rid`, then [`frequency_column`] per comparison weighed by
/// frequency): looked up once per record, so that the blocking joins carry them instead of
/// joining every pair with the frequency tables (three copies of every pair's columns).
pub fn record_frequencies(config: &IdentityConfig) -> String {
    let mut select = vec!["k.rid".to_string()];
    let mut joins = String::new();
    for (i, c) in config.comparisons.iter().enumerate() {
        if c.term_frequency
            && let Some(col) = &c.column
        {
            select.push(format!(
                "tf{i}.frequency as {}",
                ident(&frequency_column(i))
            ));
            joins.push_str(&format!(
                " left join {t} tf{i} on tf{i}.value = k.{q}",
                t = tf_table(i),
                q = ident(col)
            ));
        }
    }
    format!("select {} from {KEYS} k{joins}", select.join(", "))
}

/// Value frequencies of a column (share of the non-NULL records holding each value).
pub fn term_frequencies(column: &str) -> String {
    let q = ident(column);
    format!(
        "select {q} as value, cast(count(*) as double) / sum(count(*)) over () as frequency \
         from {KEYS} where {q} is not null group by {q}"
    )
}

/// The pairs blocking rule `index` proposes that no earlier rule did, with their comparison
/// vectors. Blocks larger than the cap are skipped.
pub fn blocked_pairs(config: &IdentityConfig, index: usize) -> String {
    let rule = &config.blocking[index];
    let on: Vec<String> = rule.on.iter().map(|c| ident(c)).collect();
    let columns = comparison_columns(config);
    let block_join: String = rule
        .on
        .iter()
        .map(|c| format!("l.{q} = blk.{q}", q = ident(c)))
        .collect::<Vec<_>>()
        .join(" and ");
    let mut filter = vec![format!("{} and l.rid < r.rid", equal(&rule.on))];
    for earlier in &config.blocking[..index] {
        filter.push(format!("not coalesce({}, false)", equal(&earlier.on)));
    }
    format!(
        "select l.rid as a, r.rid as b, {columns} \
         from {KEYS} l join {KEYS} r on {eq} \
         join (select {p} from {KEYS} where {nn} group by {p} having count(*) <= {cap}) blk \
         on {block_join} \
         where {filter}",
        eq = equal(&rule.on),
        p = on.join(", "),
        nn = not_null(&rule.on, None),
        cap = config.block_cap(rule),
        filter = filter.join(" and "),
    )
}

/// The published `match_pairs`, read by [`published_pairs`].
pub const PUBLISHED_PAIRS: &str = "__id_published_pairs";
/// Record keys by rid (`rid`, `record_key`), read by [`published_pairs`].
pub const RIDS: &str = "__id_rids";

/// Blocking rule `index`'s compared pairs as the published `match_pairs` holds them, with the
/// columns of [`blocked_pairs`]: the rids of the records (looked up by record key), the
/// comparison levels and term frequencies.
pub fn published_pairs(config: &IdentityConfig, index: usize) -> String {
    let mut columns = Vec::new();
    for c in &config.comparisons {
        columns.push(format!("p.{}", ident(&format!("gamma_{}", c.name))));
    }
    for c in &config.comparisons {
        if c.term_frequency && c.column.is_some() {
            columns.push(format!("p.{}", ident(&format!("tf_{}", c.name))));
        }
    }
    format!(
        "select ka.rid as a, kb.rid as b, {columns} from {PUBLISHED_PAIRS} p \
         join {RIDS} ka on p.record_key_a = ka.record_key \
         join {RIDS} kb on p.record_key_b = kb.record_key \
         where p.blocking_rule = {rule}",
        columns = columns.join(", "),
        rule = literal(&config.blocking[index].name),
    )
}

/// The comparison vectors of the sampled random pairs in `sample`: an index `i` and the two
/// records as struct columns `l` and `r` (so `l.<column>` reads a field). Only the levels: u is
/// estimated from them alone, so the term-frequency joins are left out.
pub fn sampled_pairs(config: &IdentityConfig, sample: &str) -> String {
    let columns: Vec<String> = config
        .comparisons
        .iter()
        .map(|c| format!("{} as {}", gamma(c), ident(&format!("gamma_{}", c.name))))
        .collect();
    format!("select i, {} from {sample}", columns.join(", "))
}

/// The links' table of the connected components (past `max_union_find_links`): `a`, `b`,
/// `kind`, `strength`, one row per link.
pub const CC_LINKS: &str = "__cc_links";
/// The current round's edges: `(a, b)`, `a > b`, once each.
pub const CC_EDGES: &str = "__cc_edges";
/// The records of the components a guard can act in: `r`.
pub const CC_GUARDED: &str = "__cc_guarded";

/// The links as undirected edges, larger record first, once each.
pub const EDGES: &str = "select distinct \
     case when a > b then a else b end as a, case when a > b then b else a end as b \
     from __cc_links where a <> b";

/// Large-star: every neighbour larger than a record links to the smallest record of its
/// neighbourhood.
pub const LARGE_STAR: &str = "with d as (select a as u, b as v from __cc_edges \
     union all select b as u, a as v from __cc_edges), \
     m as (select u, min(v) as m from d group by u) \
     select distinct d.v as a, least(m.m, d.u) as b \
     from d join m on d.u = m.u where d.v > d.u";

/// Small-star: a record and its smaller neighbours link to the smallest of them.
pub const SMALL_STAR: &str = "with m as (select a as u, min(b) as m from __cc_edges group by a) \
     select distinct a, b from (\
     select e.b as a, m.m as b from __cc_edges e join m on e.a = m.u where e.b <> m.m \
     union all select u as a, m as b from m) x";

/// Edges whose smaller record is another edge's larger one (none once settled into stars).
pub const CHAINED: &str =
    "select count(*) as n from __cc_edges e1 join __cc_edges e2 on e1.b = e2.a";

/// Records with two smaller neighbours (none once settled into stars).
pub const FORKED: &str =
    "select count(*) as n from (select a from __cc_edges group by a having count(*) > 1) x";

/// The links of the components a guard can act in, in the order the union-find applies them.
pub const GUARDED_LINKS: &str = "select l.a, l.b, l.kind, l.strength from __cc_links l \
     join __cc_guarded g on l.a = g.r \
     order by l.strength desc, l.kind, l.a, l.b";

/// Each linked record's first link in that order: how it joined its customer, where no guard
/// can act.
pub const FIRST_LINKS: &str = "select r, first_value(kind order by strength desc, kind, a, b) as kind from (\
     select a as r, a, b, kind, strength from __cc_links where a <> b \
     union all select b as r, a, b, kind, strength from __cc_links where a <> b) x \
     group by r";

/// Everything the pipeline runs, for `tessera compile`.
pub fn describe(config: &IdentityConfig, records: &str, columns: &[String]) -> String {
    let mut out = String::new();
    for (i, id) in config.identifiers.iter().enumerate() {
        if guarded(id) {
            out.push_str(&format!(
                "-- guard on {} ({}):\n{};\n\n",
                id.column,
                guard_table(i),
                guard_hits(records, id)
            ));
        }
        if let Some(predicate) = &id.shared_when {
            out.push_str(&format!(
                "-- holders of one {} value, told apart by shared_when (grouped by person into {}):\n{};\n\n",
                id.column,
                split_table(i),
                holder_pairs(records, id, predicate)
            ));
        }
    }
    let every: Vec<usize> = (0..config.identifiers.len()).collect();
    out.push_str(&format!(
        "-- {KEYS}:\n{};\n\n",
        keys(records, columns, config, &every)
    ));
    for rule in &config.rules {
        out.push_str(&format!(
            "-- deterministic rule {}:\n{};\n\n",
            rule.name,
            rule_groups(rule)
        ));
    }
    for (i, c) in config.comparisons.iter().enumerate() {
        if c.term_frequency
            && let Some(col) = &c.column
        {
            out.push_str(&format!(
                "-- term frequencies of {} ({}):\n{};\n\n",
                c.name,
                tf_table(i),
                term_frequencies(col)
            ));
        }
    }
    if config
        .comparisons
        .iter()
        .any(|c| c.term_frequency && c.column.is_some())
    {
        out.push_str(&format!(
            "-- each record's frequencies (columns added to {KEYS}):\n{};\n\n",
            record_frequencies(config)
        ));
    }
    for (i, rule) in config.blocking.iter().enumerate() {
        out.push_str(&format!(
            "-- blocking rule {}:\n{};\n\n",
            rule.name,
            blocked_pairs(config, i)
        ));
    }
    out.push_str(&format!(
        "-- clustering past max_union_find_links ({}) links: connected components over \
         {CC_LINKS}, large-star and small-star rounds until {CC_EDGES} are stars\n\
         {EDGES};\n{LARGE_STAR};\n{SMALL_STAR};\n{CHAINED};\n{FORKED};\n\
         -- then the union-find over the components a guard can act in, and the first links elsewhere\n\
         {GUARDED_LINKS};\n{FIRST_LINKS};\n\n",
        config.max_union_find_links
    ));
    out
}
