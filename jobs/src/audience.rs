//! Audiences for reverse-ETL: a segment + a destination, declared in `tessera.toml`:
//!
//! ```toml
//! [audiences.high_value_meta]
//! segment = "high_value"          # a segment of segments.membership
//! destination = "meta"            # meta, google, tiktok, linkedin, uid2 or generic
//! # purpose = "ads_personalization"   (the consent purpose; this is the default)
//! ```
//!
//! Each becomes a job `audiences.<name>` (`@materialized: tracked`, keyed on `customer_id`):
//! the segment's members who granted the purpose, with exactly the columns the destination
//! documents, normalised and hashed by `hash_identifier` per its rules. Being tracked, it has
//! `audiences.<name>_changes` (adds and removes per run, the removed rows keeping the hashed
//! identifiers a sync needs to delete them) and Delta's change data feed. `tessera compile
//! -s audiences.<name>` prints the generated SQL.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::job::{Job, JobError, parse_job_with};

/// An `[audiences.<name>]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceDecl {
    /// The segment (a `segment` value of `segments.membership`).
    pub segment: String,
    /// Where the audience goes.
    pub destination: Destination,
    /// The consent purpose members must have granted (default `ads_personalization`).
    #[serde(default = "default_purpose")]
    pub purpose: String,
    /// What the audience is for (shown in `tessera tables` and the catalog).
    #[serde(default)]
    pub description: Option<String>,
}

fn default_purpose() -> String {
    "ads_personalization".into()
}

/// A destination platform, each with its own columns and hashing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    /// Meta (Facebook/Instagram) Custom Audiences: the multi-key schema of the Marketing API,
    /// every key SHA-256 hex of its normalised value except `EXTERN_ID`.
    Meta,
    /// Google Ads Customer Match (the upload file's columns): email, phone, first and last
    /// name hashed (SHA-256 hex), country and zip in clear.
    Google,
    /// TikTok custom audience (file upload by identifier type): SHA-256 hex of the email and
    /// of the E.164 phone.
    Tiktok,
    /// LinkedIn Matched Audiences contact list (its CSV template): email SHA-256 hex, names,
    /// country in clear.
    Linkedin,
    /// UID2 / The Trade Desk identity map: base64 SHA-256 of the normalised email and phone.
    Uid2,
    /// Any other tool: the identifiers in clear (normalised) and SHA-256 hex beside them.
    Generic,
}

impl Destination {
    /// The platform name `hash_identifier` knows.
    fn platform(self) -> &'static str {
        match self {
            Destination::Meta => "meta",
            Destination::Google => "google",
            Destination::Tiktok => "tiktok",
            Destination::Linkedin => "linkedin",
            Destination::Uid2 => "uid2",
            Destination::Generic => "default",
        }
    }

    /// `(column, SQL expression over profiles.customer_360 as c)`, in the platform's order.
    /// `customer_id` (the sync key) comes first for every destination.
    pub fn columns(self) -> Vec<(&'static str, String)> {
        let p = self.platform();
        let h = |value: &str, kind: &str| format!("hash_identifier({value}, '{kind}', '{p}')");
        let two = |part: &str| {
            format!("lpad(cast(date_part('{part}', c.birth_date) as varchar), 2, '0')")
        };
        let mut out = vec![("customer_id", "c.customer_id".to_string())];
        match self {
            Destination::Meta => out.extend([
                ("EMAIL", h("c.email", "email")),
                ("PHONE", h("c.phone", "phone")),
                ("FN", h("c.first_name", "first_name")),
                ("LN", h("c.last_name", "last_name")),
                ("ZIP", h("c.postal_code", "zip")),
                ("CT", h("c.city", "city")),
                ("COUNTRY", h("c.country", "country")),
                (
                    "DOBY",
                    "sha256_hex(cast(date_part('year', c.birth_date) as varchar))".to_string(),
                ),
                ("DOBM", format!("sha256_hex({})", two("month"))),
                ("DOBD", format!("sha256_hex({})", two("day"))),
                ("EXTERN_ID", "c.customer_id".to_string()),
            ]),
            Destination::Google => out.extend([
                ("Email", h("c.email", "email")),
                ("Phone", h("c.phone", "phone")),
                ("First Name", h("c.first_name", "first_name")),
                ("Last Name", h("c.last_name", "last_name")),
                ("Country", "c.country".to_string()),
                ("Zip", "c.postal_code".to_string()),
            ]),
            Destination::Tiktok => out.extend([
                ("EMAIL_SHA256", h("c.email", "email")),
                ("PHONE_SHA256", h("c.phone", "phone")),
            ]),
            Destination::Linkedin => out.extend([
                ("email", h("c.email", "email")),
                ("firstname", "initcap(c.first_name)".to_string()),
                ("lastname", "initcap(c.last_name)".to_string()),
                ("jobtitle", "cast(null as varchar)".to_string()),
                ("employeecompany", "cast(null as varchar)".to_string()),
                ("country", "c.country".to_string()),
                ("googleaid", "cast(null as varchar)".to_string()),
            ]),
            Destination::Uid2 => out.extend([
                ("email_hash", h("c.email", "email")),
                ("phone_hash", h("c.phone", "phone")),
            ]),
            Destination::Generic => out.extend([
                ("email", "c.email".to_string()),
                ("phone", "c.phone".to_string()),
                ("first_name", "c.first_name".to_string()),
                ("last_name", "c.last_name".to_string()),
                ("postal_code", "c.postal_code".to_string()),
                ("city", "c.city".to_string()),
                ("country", "c.country".to_string()),
                ("email_sha256", h("c.email", "email")),
                ("phone_sha256", h("c.phone", "phone")),
            ]),
        }
        out
    }

    /// The columns a `remove` change keeps when a person is erased: the sync key and the
    /// hashed identifiers the platform needs to find them (clear values are dropped).
    pub fn removal_columns(self) -> Vec<&'static str> {
        self.columns()
            .into_iter()
            .filter(|(c, expr)| {
                *c == "customer_id"
                    || *c == "EXTERN_ID"
                    || expr.starts_with("hash_identifier(")
                    || expr.starts_with("sha256_hex(")
            })
            .map(|(c, _)| c)
            .collect()
    }

    /// The identifier columns a platform can match on (a member with none is left out).
    fn match_keys(self) -> &'static [&'static str] {
        match self {
            Destination::Meta => &["EMAIL", "PHONE"],
            Destination::Google => &["Email", "Phone"],
            Destination::Tiktok => &["EMAIL_SHA256", "PHONE_SHA256"],
            Destination::Linkedin => &["email"],
            Destination::Uid2 => &["email_hash", "phone_hash"],
            Destination::Generic => &["email", "phone"],
        }
    }
}

use tessera_engine::sql::ident as quote;

use tessera_engine::sql::literal;

/// The SQL of an audience job, header included.
pub fn audience_sql(name: &str, decl: &AudienceDecl) -> String {
    let d = decl.destination;
    let description = decl.description.clone().unwrap_or_else(|| {
        format!(
            "Segment `{}` for {:?}, members with `{}` consent; hashed per the platform's rules.",
            decl.segment, d, decl.purpose
        )
    });
    let columns = d
        .columns()
        .into_iter()
        .map(|(col, expr)| format!("    {expr} as {}", quote(col)))
        .collect::<Vec<_>>()
        .join(",\n");
    let usable = d
        .match_keys()
        .iter()
        .map(|k| format!("{} is not null", quote(k)))
        .collect::<Vec<_>>()
        .join(" or ");
    format!(
        "-- Audience `{name}` (generated from [audiences.{name}] in tessera.toml).\n\
         -- @materialized: tracked\n\
         -- @unique_key: customer_id\n\
         -- @tags: audiences\n\
         -- @description: {description}\n\
         -- @grain: customer_id\n\
         -- @test: unique(customer_id)\n\
         with members as (\n\
         select c.*\n\
         from profiles.customer_360 c\n\
         join segments.membership m on m.customer_id = c.customer_id and m.segment = {segment}\n\
         join profiles.customer_consent k\n    on k.customer_id = c.customer_id and k.purpose = {purpose} and k.granted\n\
         ),\n\
         shaped as (\n\
         select\n{columns}\n\
         from members c\n\
         )\n\
         select * from shaped where {usable}\n",
        segment = literal(&decl.segment),
        purpose = literal(&decl.purpose),
    )
}

/// The columns a platform's upload file has (the audience table's, less the `customer_id`
/// sync key unless the platform takes it).
pub fn upload_columns(destination: Destination) -> Vec<&'static str> {
    destination
        .columns()
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| *c != "customer_id" || destination == Destination::Generic)
        .collect()
}

/// The query of an audience's upload file.
pub fn upload_sql(name: &str, destination: Destination) -> String {
    let columns = upload_columns(destination)
        .into_iter()
        .map(quote)
        .collect::<Vec<_>>()
        .join(", ");
    format!("select {columns} from audiences.{name} order by customer_id")
}

/// The pre-sync report over every audience: members, identifier coverage (share with an
/// email, a phone, an address), consent-filtered share of the segment, and the last run's
/// adds and removes.
pub fn report_sql(audiences: &BTreeMap<String, AudienceDecl>) -> String {
    let parts: Vec<String> = audiences
        .iter()
        .map(|(name, decl)| {
            format!(
                "select {n} as audience, {d} as destination, {s} as segment, {p} as purpose, \n\
                 (select count(*) from segments.membership where segment = {s}) as segment_members, \n\
                 count(*) as members, \n\
                 coalesce(avg(case when c.email is not null then 1.0 else 0.0 end), 0) as email_coverage, \n\
                 coalesce(avg(case when c.phone is not null then 1.0 else 0.0 end), 0) as phone_coverage, \n\
                 coalesce(avg(case when c.postal_code is not null and c.country is not null then 1.0 else 0.0 end), 0) as address_coverage, \n\
                 (select count(*) from audiences.{name}_changes where change = 'add' \n\
                    and run_id = (select max(run_id) from audiences.{name}_changes)) as added_last_change, \n\
                 (select count(*) from audiences.{name}_changes where change = 'remove' \n\
                    and run_id = (select max(run_id) from audiences.{name}_changes)) as removed_last_change, \n\
                 (select max(changed_at) from audiences.{name}_changes) as last_changed_at \n\
                 from audiences.{name} a join profiles.customer_360 c on c.customer_id = a.customer_id",
                n = literal(name),
                d = literal(&format!("{:?}", decl.destination).to_lowercase()),
                s = literal(&decl.segment),
                p = literal(&decl.purpose),
            )
        })
        .collect();
    format!(
        "-- Pre-sync report of every audience (generated from [audiences.*] in tessera.toml).\n\
         -- @materialized: table\n\
         -- @tags: audiences\n\
         -- @description: Per audience: size, share of the segment kept by consent, identifier coverage, last adds/removes.\n\
         -- @grain: audience\n\
         -- @test: unique(audience)\n\
         {}\n",
        parts.join("\nunion all\n")
    )
}

/// The jobs of the project's audiences, and their pre-sync report.
pub fn audience_jobs(audiences: &BTreeMap<String, AudienceDecl>) -> (Vec<Job>, Vec<JobError>) {
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    if !audiences.is_empty() {
        let relative = PathBuf::from("jobs/audiences/sync_report.sql");
        match parse_job_with(&relative, &report_sql(audiences), &[]) {
            Ok(mut job) => {
                job.path = PathBuf::from("tessera.toml [audiences]");
                jobs.push(job);
            }
            Err(mut e) => {
                e.path = PathBuf::from("tessera.toml [audiences]");
                errors.push(e);
            }
        }
    }
    for (name, decl) in audiences {
        if name == "sync_report" {
            errors.push(JobError {
                path: PathBuf::from("tessera.toml [audiences.sync_report]"),
                line: None,
                message:
                    "`sync_report` is the name of the audiences' pre-sync report; choose another"
                        .into(),
            });
            continue;
        }
        let relative = PathBuf::from(format!("jobs/audiences/{name}.sql"));
        match parse_job_with(&relative, &audience_sql(name, decl), &[]) {
            Ok(mut job) => {
                job.path = PathBuf::from(format!("tessera.toml [audiences.{name}]"));
                jobs.push(job);
            }
            Err(mut e) => {
                e.path = PathBuf::from(format!("tessera.toml [audiences.{name}]"));
                errors.push(e);
            }
        }
    }
    (jobs, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_destination_parses_as_a_tracked_job() {
        for destination in [
            Destination::Meta,
            Destination::Google,
            Destination::Tiktok,
            Destination::Linkedin,
            Destination::Uid2,
            Destination::Generic,
        ] {
            let decl = AudienceDecl {
                segment: "o'brien fans".into(),
                destination,
                purpose: default_purpose(),
                description: None,
            };
            let mut map = BTreeMap::new();
            map.insert("a".to_string(), decl);
            let (jobs, errors) = audience_jobs(&map);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(jobs[0].name, "audiences.sync_report");
            assert_eq!(jobs[1].name, "audiences.a");
            assert_eq!(
                jobs[1].config.materialized,
                crate::job::Materialized::Tracked
            );
            assert!(jobs[1].sql.contains("'o''brien fans'"), "{}", jobs[1].sql);
            assert!(jobs[0].sql.contains("'o''brien fans'"), "{}", jobs[0].sql);
        }
    }

    #[test]
    fn unknown_destinations_and_keys_are_refused() {
        let bad: Result<AudienceDecl, _> =
            toml::from_str("segment = \"x\"\ndestination = \"myspace\"");
        assert!(bad.is_err());
        let bad: Result<AudienceDecl, _> =
            toml::from_str("segment = \"x\"\ndestination = \"meta\"\nsegmnet = \"y\"");
        assert!(bad.is_err());
    }
}
