//! Help for mapping a new source: what each column holds (`tessera profile`), and an identity
//! job written from that (`tessera init --from`), in SQL the user reviews.
//!
//! A column's *kind* (email, phone, first name...) is guessed from its name (in English, French,
//! German and Spanish, as exports name them) and from a sample of its values; the confidence
//! says how far both agree. The guess only writes SQL for a person to read: nothing runs on it
//! unseen.

use std::fmt::Write as _;

use crate::errors::{Context, Result};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::Serialize;

use crate::workspace::Workspace;

/// What a column looks like it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An identifier of the row in its system.
    Id,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A given name.
    FirstName,
    /// A family name.
    LastName,
    /// A whole name in one column.
    FullName,
    /// A date of birth.
    BirthDate,
    /// Another date.
    Date,
    /// A postal code.
    PostalCode,
    /// A city.
    City,
    /// A street address.
    Street,
    /// A country.
    Country,
}

impl Kind {
    /// The kind's name as `tessera profile` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Id => "id",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::FirstName => "first_name",
            Kind::LastName => "last_name",
            Kind::FullName => "full_name",
            Kind::BirthDate => "birth_date",
            Kind::Date => "date",
            Kind::PostalCode => "postal_code",
            Kind::City => "city",
            Kind::Street => "street",
            Kind::Country => "country",
        }
    }
}

/// One column of a source, as `tessera profile` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnProfile {
    /// The column's name.
    pub column: String,
    /// Its type as read.
    pub data_type: String,
    /// Rows in the source.
    pub rows: u64,
    /// Share of rows with a value (not NULL, not blank).
    pub fill_rate: f64,
    /// Distinct values (approximate).
    pub distinct: u64,
    /// Longest value, in characters (of the sample).
    pub max_length: usize,
    /// Up to three values of the sample.
    pub examples: Vec<String>,
    /// What it looks like it holds.
    pub kind: Option<Kind>,
    /// How sure the guess is, from 0 to 1.
    pub confidence: f64,
}

/// Rows read for the content checks and examples.
const SAMPLE_ROWS: usize = 2000;

/// Profiles a source (or any table) by name.
pub async fn profile(ws: &Workspace, table: &str) -> Result<Vec<ColumnProfile>> {
    let reference = tessera_engine::sql::table_name(table);
    let probe = format!("select * from {reference} limit 0");
    ws.prepare_for(&probe).await?;
    let ctx = ws.engine.ctx();
    let schema = ctx
        .sql(&probe)
        .await
        .with_context(|| format!("no source or table named `{table}`"))?
        .schema()
        .as_arrow()
        .clone();
    let mut aggregates = vec!["count(*)".to_string()];
    for field in schema.fields() {
        let c = tessera_engine::sql::ident(field.name());
        aggregates.push(format!("count(nullif(trim(cast({c} as varchar)), ''))"));
        aggregates.push(format!("approx_distinct(cast({c} as varchar))"));
    }
    let stats = ctx
        .sql(&format!(
            "select {} from {reference}",
            aggregates.join(", ")
        ))
        .await?
        .collect()
        .await
        .with_context(|| format!("cannot read `{table}`"))?;
    let number = |i: usize| -> u64 {
        let column = stats[0].column(i);
        datafusion::arrow::compute::cast(column, &datafusion::arrow::datatypes::DataType::UInt64)
            .ok()
            .and_then(|a| {
                a.as_any()
                    .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0)
    };
    let rows = number(0);
    let sample = ctx
        .sql(&format!("select * from {reference} limit {SAMPLE_ROWS}"))
        .await?
        .collect()
        .await?;
    let mut profiles = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let values = sample_values(&sample, i);
        let (kind, confidence) = guess(field.name(), &values, field.data_type());
        profiles.push(ColumnProfile {
            column: field.name().clone(),
            data_type: field.data_type().to_string(),
            rows,
            fill_rate: if rows == 0 {
                0.0
            } else {
                number(1 + 2 * i) as f64 / rows as f64
            },
            distinct: number(2 + 2 * i),
            max_length: values.iter().map(|v| v.chars().count()).max().unwrap_or(0),
            examples: distinct_examples(&values, 3),
            kind,
            confidence,
        });
    }
    Ok(profiles)
}

fn sample_values(batches: &[RecordBatch], column: usize) -> Vec<String> {
    let options = FormatOptions::default();
    let mut values = Vec::new();
    for batch in batches {
        let array = batch.column(column);
        let Ok(formatter) = ArrayFormatter::try_new(array.as_ref(), &options) else {
            continue;
        };
        for row in 0..array.len() {
            if array.is_valid(row) {
                let text = formatter.value(row).to_string();
                if !text.trim().is_empty() {
                    values.push(text.trim().to_string());
                }
            }
        }
    }
    values
}

fn distinct_examples(values: &[String], n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(v) {
            let short: String = v.chars().take(40).collect();
            out.push(if short.len() < v.len() {
                format!("{short}…")
            } else {
                short
            });
        }
        if out.len() == n {
            break;
        }
    }
    out
}

/// The column name in one form: lower case, words joined by `_`.
fn normalized(name: &str) -> String {
    let mut out = String::new();
    let mut last_lower = false;
    for c in deunicode::deunicode(name).chars() {
        if c.is_ascii_alphanumeric() {
            // camelCase → camel_case
            if c.is_ascii_uppercase() && last_lower {
                out.push('_');
            }
            last_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            last_lower = false;
        }
    }
    out.trim_end_matches('_').to_string()
}

/// What the column's name says, most specific first.
fn kind_from_name(name: &str) -> Option<Kind> {
    let n = normalized(name);
    let words: Vec<&str> = n.split('_').collect();
    let has = |w: &str| words.contains(&w);
    let joined = words.concat();
    let any = |list: &[&str]| list.iter().any(|w| has(w) || joined == *w);
    if any(&["email", "mail", "courriel", "correo"]) || joined.contains("email") {
        return Some(Kind::Email);
    }
    if any(&[
        "phone",
        "tel",
        "telephone",
        "telefon",
        "telefono",
        "mobile",
        "cell",
        "gsm",
        "portable",
        "handy",
        "fon",
    ]) || joined.contains("phone")
    {
        return Some(Kind::Phone);
    }
    if any(&[
        "dob",
        "birthdate",
        "birthday",
        "geburtsdatum",
        "naissance",
        "nacimiento",
        "bday",
    ]) || joined.contains("birth")
        || (has("date") && (has("naissance") || has("nacimiento")))
    {
        return Some(Kind::BirthDate);
    }
    if any(&[
        "firstname",
        "givenname",
        "forename",
        "prenom",
        "vorname",
        "nombre",
        "fname",
    ]) || (has("first") && has("name"))
        || (has("given") && has("name"))
    {
        return Some(Kind::FirstName);
    }
    if any(&[
        "lastname",
        "surname",
        "familyname",
        "nachname",
        "apellido",
        "apellidos",
        "lname",
    ]) || (has("last") && has("name"))
        || (has("family") && has("name"))
        || joined == "nom"
    {
        return Some(Kind::LastName);
    }
    if any(&[
        "zip",
        "zipcode",
        "postcode",
        "postalcode",
        "plz",
        "cp",
        "postleitzahl",
    ]) || (has("postal") || has("post") && has("code"))
    {
        return Some(Kind::PostalCode);
    }
    if any(&["country", "pays", "land", "pais", "countrycode"]) {
        return Some(Kind::Country);
    }
    if any(&[
        "city",
        "town",
        "ville",
        "ort",
        "stadt",
        "ciudad",
        "locality",
        "suburb",
        "commune",
        "municipality",
        "gemeinde",
    ]) {
        return Some(Kind::City);
    }
    if any(&[
        "street", "address", "addr", "adresse", "rue", "strasse", "calle", "address1", "line1",
    ]) {
        return Some(Kind::Street);
    }
    if any(&[
        "name",
        "fullname",
        "customername",
        "contactname",
        "clientname",
    ]) || (has("name") && !has("user") && !has("file") && !has("company"))
    {
        return Some(Kind::FullName);
    }
    let last = words.last().copied().unwrap_or("");
    if matches!(
        last,
        "id" | "no" | "nr" | "num" | "number" | "key" | "code" | "ref"
    ) || n == "id"
        || joined.ends_with("id") && words.len() == 1 && n.len() > 2 && n.len() <= 12
    {
        return Some(Kind::Id);
    }
    if has("date") || last == "at" || last == "on" || has("ts") {
        return Some(Kind::Date);
    }
    None
}

/// Share of `values` for which `test` holds.
fn share(values: &[String], test: impl Fn(&str) -> bool) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().filter(|v| test(v)).count() as f64 / values.len() as f64
}

fn looks_like_email(v: &str) -> bool {
    let Some((local, domain)) = v.rsplit_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !v.chars().any(char::is_whitespace)
}

fn looks_like_phone(v: &str) -> bool {
    if looks_like_date(v) {
        return false;
    }
    let digits = v.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&digits)
        && v.chars()
            .all(|c| c.is_ascii_digit() || " +-().\u{a0}/".contains(c))
        && (v.contains(|c: char| " +-().".contains(c)) || digits >= 9)
}

fn looks_like_date(v: &str) -> bool {
    // Compact `YYYYMMDD` (FEBRL, many mainframe exports): a real month and day.
    if v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit()) {
        let (y, m, d) = (&v[..4], &v[4..6], &v[6..]);
        let n = |s: &str| s.parse::<u32>().unwrap_or(0);
        return (1800..=2100).contains(&n(y))
            && (1..=12).contains(&n(m))
            && (1..=31).contains(&n(d));
    }
    let parts: Vec<&str> = v
        .split(['-', '/', '.', ' ', 'T'])
        .filter(|p| !p.is_empty())
        .collect();
    parts.len() >= 3
        && parts[..3]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_digit()) && (1..=4).contains(&p.len()))
        && parts[..3].iter().any(|p| p.len() == 4 || p.len() == 2)
}

/// A plausible birth year (1900–2015) in a date's text.
fn birth_year(v: &str) -> bool {
    v.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| (p.len() == 4).then(|| p.parse::<u32>().ok()).flatten())
        .any(|y| (1900..=2015).contains(&y))
}

fn looks_like_name(v: &str) -> bool {
    v.chars().any(char::is_alphabetic)
        && v.chars().all(|c| c.is_alphabetic() || " -'.,".contains(c))
        && v.chars().count() <= 60
}

fn words_in(v: &str) -> usize {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .count()
}

/// The kind and a confidence from the column's name and its sampled values.
pub fn guess(
    name: &str,
    values: &[String],
    data_type: &datafusion::arrow::datatypes::DataType,
) -> (Option<Kind>, f64) {
    let by_name = kind_from_name(name);
    let is_date_type = matches!(
        data_type,
        datafusion::arrow::datatypes::DataType::Date32
            | datafusion::arrow::datatypes::DataType::Date64
            | datafusion::arrow::datatypes::DataType::Timestamp(_, _)
    );
    // What the values say, with the share that fits.
    let email = share(values, looks_like_email);
    let phone = share(values, looks_like_phone);
    let date = if is_date_type {
        1.0
    } else {
        share(values, looks_like_date)
    };
    let name_like = share(values, looks_like_name);
    let multi_word = share(values, |v| words_in(v) >= 2);
    let by_content: Option<(Kind, f64)> = if values.is_empty() {
        None
    } else if email >= 0.6 {
        Some((Kind::Email, email))
    } else if phone >= 0.6 {
        Some((Kind::Phone, phone))
    } else if date >= 0.6 {
        if share(values, birth_year) >= 0.6 && by_name != Some(Kind::Date) {
            Some((Kind::BirthDate, date * 0.6))
        } else {
            Some((Kind::Date, date))
        }
    } else if name_like >= 0.8 && multi_word >= 0.6 {
        Some((Kind::FullName, name_like * 0.7))
    } else if name_like >= 0.8 {
        // One word: a first or last name, or a city; the name has to say which.
        None
    } else {
        None
    };
    let fits = |kind: Kind| -> f64 {
        match kind {
            Kind::Email => email,
            Kind::Phone => phone,
            Kind::BirthDate | Kind::Date => date,
            Kind::FirstName | Kind::LastName | Kind::City | Kind::Country => name_like,
            Kind::FullName => name_like,
            // A street has words: a column of bare numbers is the house number beside it.
            Kind::Street => share(values, |v| v.chars().any(char::is_alphabetic)),
            Kind::PostalCode | Kind::Id => 1.0,
        }
    };
    match (by_name, by_content) {
        (Some(n), Some((c, s))) if n == c || (n == Kind::Date && c == Kind::BirthDate) => {
            (Some(n), round(0.6 + 0.4 * s))
        }
        (Some(Kind::BirthDate), Some((Kind::Date, s))) => {
            (Some(Kind::BirthDate), round(0.6 + 0.4 * s))
        }
        (Some(n), Some((c, s))) if s >= 0.9 && matches!(c, Kind::Email | Kind::Phone) => {
            // The values say it louder than the header.
            let _ = n;
            (Some(c), round(0.5 * s))
        }
        (Some(n), _) if values.is_empty() => (Some(n), 0.4),
        (Some(n), _) => {
            let f = fits(n);
            if f < 0.5 {
                (Some(n), round(0.3 * f + 0.2))
            } else {
                (Some(n), round(0.4 + 0.4 * f))
            }
        }
        (None, Some((c, s))) => (Some(c), round(0.6 * s)),
        (None, None) => (None, 0.0),
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The columns of one source an identity job reads, by kind.
#[derive(Debug, Clone, Default)]
pub struct SourceMapping {
    /// The source's name.
    pub source: String,
    /// Column per kind (the most confident one).
    pub columns: std::collections::BTreeMap<&'static str, (String, f64, String)>,
    /// Every column name (for a row hash when there is no id).
    pub all_columns: Vec<String>,
}

/// Picks, per kind, the most confident column of a profiled source (confidence ≥ 0.4).
pub fn mapping(source: &str, profiles: &[ColumnProfile]) -> SourceMapping {
    let mut m = SourceMapping {
        source: source.to_string(),
        all_columns: profiles.iter().map(|p| p.column.clone()).collect(),
        ..SourceMapping::default()
    };
    for p in profiles {
        let Some(kind) = p.kind else { continue };
        if p.confidence < 0.4 {
            continue;
        }
        // An id must tell rows apart.
        if kind == Kind::Id && p.rows > 0 && (p.distinct as f64) < 0.95 * p.rows as f64 {
            continue;
        }
        let better = m
            .columns
            .get(kind.name())
            .is_none_or(|(_, c, _)| p.confidence > *c);
        if better {
            m.columns.insert(
                kind.name(),
                (p.column.clone(), p.confidence, p.data_type.clone()),
            );
        }
    }
    m
}

/// Countries whose national phone numbers are tried, in order, when a row has no country.
pub const PHONE_REGIONS: &str = "'US', 'GB', 'FR', 'DE'";

/// The identity job for the mapped sources: each source's columns in the records' shape
/// (docs/identity.md, "The records"), NULL where a source lacks one, with the normalising
/// function of each kind.
pub fn identity_sql(sources: &[SourceMapping]) -> String {
    let mut sql = String::from(
        "-- The identity records: one row per person record of each source, in the shape\n\
         -- [identity] reads (docs/identity.md, \"The records\"). Written by `tessera init --from`\n\
         -- from what `tessera profile` saw in each column: CHECK EVERY MAPPING below (the\n\
         -- comments say which column was taken and how sure the guess was), then `tessera run`.\n\
         -- A column a source does not have is NULL. Required: record_key (unique), source,\n\
         -- record_id; the others are optional but each one you fill helps matching.\n\
         -- @materialized: identity\n\
         -- @grain: record_key\n\
         -- @test: unique(record_key)\n\
         with\n",
    );
    for source in sources {
        let m = Mapped(source);
        let country = m.col("country");
        let _ = writeln!(
            sql,
            "{} as (",
            tessera_engine::sql::ident_if_needed(&format!("{}_records", m.0.source))
        );
        let _ = writeln!(sql, "    select");
        let _ = writeln!(
            sql,
            "        {} as source,",
            tessera_engine::sql::literal(&m.0.source)
        );
        cte_record_id(&mut sql, &m);
        cte_names(&mut sql, &m);
        cte_contact(&mut sql, &m, country.as_deref());
        cte_place(&mut sql, &m, country.as_deref());
        let _ = writeln!(
            sql,
            "    from {}",
            tessera_engine::sql::ident_if_needed(&m.0.source)
        );
        let _ = writeln!(sql, "),");
    }
    let unions = sources
        .iter()
        .map(|m| {
            format!(
                "select * from {}",
                tessera_engine::sql::ident_if_needed(&format!("{}_records", m.source))
            )
        })
        .collect::<Vec<_>>()
        .join("\n    union all ");
    let _ = write!(
        sql,
        "records as (\n    {unions}\n)\n\
         select\n    \
         source || ':' || record_id as record_key,\n    \
         source,\n    \
         record_id,\n    \
         first_name,\n    \
         nickname_root(first_name) as first_name_root,\n    \
         last_name,\n    \
         daitch_mokotoff(last_name) as last_name_sound,\n    \
         -- First and last typed the other way round give the same key.\n    \
         case when first_name <= last_name then first_name || ' ' || last_name\n        \
         else last_name || ' ' || first_name end as name_key,\n    \
         display_name,\n    \
         email,\n    \
         phone,\n    \
         phone_key,\n    \
         birth_date,\n    \
         postal_code,\n    \
         city,\n    \
         country,\n    \
         -- Columns the default [identity] section compares; map them if your sources have them.\n    \
         cast(null as varchar) as loyalty_number,\n    \
         cast(null as varchar) as web_user_id\n\
         from records\n"
    );
    sql
}

/// A source's mapping, as the identity job's SQL reads it.
struct Mapped<'a>(&'a SourceMapping);

impl Mapped<'_> {
    /// The source column mapped to `kind`, as SQL.
    fn col(&self, kind: &str) -> Option<String> {
        self.0
            .columns
            .get(kind)
            .map(|(c, _, _)| tessera_engine::sql::ident_if_needed(c))
    }

    /// Which column was taken for `kind`, and how sure the guess was (a trailing comment).
    fn note(&self, kind: &str) -> String {
        self.0
            .columns
            .get(kind)
            .map(|(c, conf, _)| format!("  -- from `{c}` ({:.0}% sure)", conf * 100.0))
            .unwrap_or_else(|| "  -- not found in this source".into())
    }
}

/// The record id: the id column, else a hash of the row.
fn cte_record_id(sql: &mut String, m: &Mapped) {
    match m.col("id") {
        Some(id) => {
            let _ = writeln!(
                sql,
                "        cast({id} as varchar) as record_id,{}",
                m.note("id")
            );
        }
        None => {
            let all =
                m.0.all_columns
                    .iter()
                    .map(|c| {
                        format!(
                            "cast({} as varchar)",
                            tessera_engine::sql::ident_if_needed(c)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
            let _ = writeln!(
                sql,
                "        -- No id column found: a hash of the row (a changed row is a new record).\n        \
                 md5(concat_ws('|', {all})) as record_id,"
            );
        }
    }
}

/// First and last names (normalised; split from a full name when that is all there is) and
/// the name as written.
fn cte_names(sql: &mut String, m: &Mapped) {
    let (first, last, display) = match (m.col("first_name"), m.col("last_name"), m.col("full_name"))
    {
        (Some(f), Some(l), _) => (
            format!("name_normalize({f})"),
            format!("name_normalize({l})"),
            format!("nullif(trim(concat_ws(' ', trim({f}), trim({l}))), '')"),
        ),
        (f, l, Some(full)) => (
            f.map(|f| format!("name_normalize({f})"))
                .unwrap_or_else(|| format!("name_part({full}, 'first')")),
            l.map(|l| format!("name_normalize({l})"))
                .unwrap_or_else(|| format!("name_part({full}, 'last')")),
            format!("nullif(trim({full}), '')"),
        ),
        (f, l, None) => (
            f.as_ref()
                .map(|f| format!("name_normalize({f})"))
                .unwrap_or_else(|| "cast(null as varchar)".into()),
            l.as_ref()
                .map(|l| format!("name_normalize({l})"))
                .unwrap_or_else(|| "cast(null as varchar)".into()),
            f.or(l)
                .map(|c| format!("nullif(trim({c}), '')"))
                .unwrap_or_else(|| "cast(null as varchar)".into()),
        ),
    };
    let name_note = if m.col("first_name").is_some() || m.col("last_name").is_some() {
        format!(
            "{} /{}",
            m.note("first_name"),
            m.note("last_name").trim_start_matches("  --")
        )
    } else {
        m.note("full_name")
    };
    let _ = writeln!(sql, "        {first} as first_name,{name_note}");
    let _ = writeln!(sql, "        {last} as last_name,");
    let _ = writeln!(
        sql,
        "        -- The name as the source writes it (case, accents), for people to read.\n        \
         {display} as display_name,"
    );
}

/// Email (canonical form), phone (E.164, read in the row's country or each of the usual
/// ones) and the phone's digits key.
fn cte_contact(sql: &mut String, m: &Mapped, country: Option<&str>) {
    match m.col("email") {
        Some(e) => {
            let _ = writeln!(
                sql,
                "        email_canonical({e}) as email,{}",
                m.note("email")
            );
        }
        None => {
            let _ = writeln!(
                sql,
                "        cast(null as varchar) as email,{}",
                m.note("email")
            );
        }
    }
    match m.col("phone") {
        Some(p) => {
            let regions = match country {
                Some(c) => format!("country_code({c}), {PHONE_REGIONS}"),
                None => PHONE_REGIONS.to_string(),
            };
            let _ = writeln!(
                sql,
                "        -- A national number is read in the row's country, else in each of these in turn.\n        \
                 phone_e164({p}, {regions}) as phone,{}\n        phone_key({p}) as phone_key,",
                m.note("phone")
            );
        }
        None => {
            let _ = writeln!(
                sql,
                "        cast(null as varchar) as phone,{}\n        cast(null as varchar) as phone_key,",
                m.note("phone")
            );
        }
    }
}

/// Birth date, postal code, city and country.
fn cte_place(sql: &mut String, m: &Mapped, country: Option<&str>) {
    match m.0.columns.get("birth_date") {
        Some((c, _, ty)) if ty.starts_with("Date") || ty.starts_with("Timestamp") => {
            let _ = writeln!(
                sql,
                "        cast({} as date) as birth_date,{}",
                tessera_engine::sql::ident_if_needed(c),
                m.note("birth_date")
            );
        }
        Some((c, _, _)) => {
            let _ = writeln!(
                sql,
                "        -- `mdy` reads 01/02/1990 as January 2nd; use 'dmy' for day-first sources.\n        \
                 parse_date({}, 'mdy') as birth_date,{}",
                tessera_engine::sql::ident_if_needed(c),
                m.note("birth_date")
            );
        }
        None => {
            let _ = writeln!(
                sql,
                "        cast(null as date) as birth_date,{}",
                m.note("birth_date")
            );
        }
    }
    match m.col("postal_code") {
        Some(z) => {
            // Without a country nothing says which country's form a code must have (a
            // 4-digit Australian code is no US ZIP): compared as written, upper case with
            // single spaces. With one, the country's standard form, else as written.
            let as_written = format!(
                "nullif(upper(regexp_replace(trim(cast({z} as varchar)), '\\s+', ' ', 'g')), '')"
            );
            let expr = match country {
                Some(c) => format!(
                    "coalesce(postal_code_normalize(cast({z} as varchar), {c}), {as_written})"
                ),
                None => format!(
                    "-- No country column: the code as written. With one, use\n        \
                     -- postal_code_normalize(code, country) for each country's standard form.\n        \
                     {as_written}"
                ),
            };
            let _ = writeln!(
                sql,
                "        {expr} as postal_code,{}",
                m.note("postal_code")
            );
        }
        None => {
            let _ = writeln!(
                sql,
                "        cast(null as varchar) as postal_code,{}",
                m.note("postal_code")
            );
        }
    }
    match m.col("city") {
        Some(c) => {
            let _ = writeln!(
                sql,
                "        city_normalize({c}) as city,{}",
                m.note("city")
            );
        }
        None => {
            let _ = writeln!(sql, "        cast(null as varchar) as city,");
        }
    }
    match country {
        Some(c) => {
            let _ = writeln!(
                sql,
                "        country_code({c}) as country{}",
                m.note("country")
            );
        }
        None => {
            let _ = writeln!(sql, "        cast(null as varchar) as country");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    fn v(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_in_several_languages() {
        let cases = [
            ("E-Mail Address", Kind::Email),
            ("Courriel", Kind::Email),
            ("Tel. mobile", Kind::Phone),
            ("Phone Number", Kind::Phone),
            ("Date of Birth", Kind::BirthDate),
            ("DOB", Kind::BirthDate),
            ("Prénom", Kind::FirstName),
            ("firstName", Kind::FirstName),
            ("Vorname", Kind::FirstName),
            ("Nom", Kind::LastName),
            ("Surname", Kind::LastName),
            ("Last Name", Kind::LastName),
            ("Zip Code", Kind::PostalCode),
            ("PLZ", Kind::PostalCode),
            ("Country", Kind::Country),
            ("City", Kind::City),
            ("Street Address", Kind::Street),
            ("Customer Name", Kind::FullName),
            ("Contact ID", Kind::Id),
            ("customer_no", Kind::Id),
            ("created_at", Kind::Date),
        ];
        for (name, kind) in cases {
            assert_eq!(kind_from_name(name), Some(kind), "{name}");
        }
        assert_eq!(kind_from_name("amount"), None);
    }

    #[test]
    fn values_confirm_or_override_the_header() {
        let emails = v(&["a@b.com", "jane.doe+x@gmail.com", "x@y.fr"]);
        let (k, c) = guess("E-Mail", &emails, &DataType::Utf8);
        assert_eq!(k, Some(Kind::Email));
        assert!(c >= 0.9, "{c}");
        // A header that says nothing, values that do.
        let (k, c) = guess("field_7", &emails, &DataType::Utf8);
        assert_eq!(k, Some(Kind::Email));
        assert!((0.4..0.9).contains(&c), "{c}");
        let phones = v(&["+33 6 12 34 56 78", "(415) 555-2671", "020 7946 0958"]);
        assert_eq!(
            guess("contact", &phones, &DataType::Utf8).0,
            Some(Kind::Phone)
        );
        let dates = v(&["1984-03-02", "02/11/1990", "1975.12.01"]);
        assert_eq!(
            guess("Date of Birth", &dates, &DataType::Utf8).0,
            Some(Kind::BirthDate)
        );
        assert_eq!(
            guess("Geburtsdatum", &dates, &DataType::Utf8).0,
            Some(Kind::BirthDate)
        );
        assert_eq!(
            guess("col", &dates, &DataType::Utf8).0,
            Some(Kind::BirthDate)
        );
        // FEBRL's public data: compact dates, a house number beside the street, suburbs.
        let compact = v(&["19151111", "19161214", "19480930"]);
        let (k, c) = guess("date_of_birth", &compact, &DataType::Utf8);
        assert_eq!(k, Some(Kind::BirthDate));
        assert!(c >= 0.9, "{c}");
        assert!(!looks_like_date("20241399") && !looks_like_date("12345678"));
        let numbers = v(&["8", "12", "38"]);
        let (k, c) = guess("street_number", &numbers, &DataType::Utf8);
        assert!(k != Some(Kind::Street) || c < 0.4, "{k:?} {c}");
        let streets = v(&["stanley street", "pinkerton circuit", "salkauskas crescent"]);
        let (k, c) = guess("address_1", &streets, &DataType::Utf8);
        assert_eq!(k, Some(Kind::Street));
        assert!(c >= 0.6, "{c}");
        assert_eq!(
            guess("suburb", &v(&["winston hills", "dapto"]), &DataType::Utf8).0,
            Some(Kind::City)
        );
        let names = v(&["Jessica Müller", "Jean-Luc Picard", "O'Brien Miles"]);
        assert_eq!(
            guess("who", &names, &DataType::Utf8).0,
            Some(Kind::FullName)
        );
        // A header that lies: a "phone" column full of emails is an email column.
        assert_eq!(
            guess("phone", &emails, &DataType::Utf8).0,
            Some(Kind::Email)
        );
        // A name column with no values keeps a low-confidence guess.
        let (k, c) = guess("first_name", &[], &DataType::Utf8);
        assert_eq!(k, Some(Kind::FirstName));
        assert!(c < 0.5);
        assert_eq!(guess("amount", &v(&["12.5", "3"]), &DataType::Utf8).0, None);
    }
}
