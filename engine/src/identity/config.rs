//! The `[identity]` section of `tessera.toml`: identifiers and their guards, deterministic rules,
//! blocking rules, comparisons (ordered levels written as SQL predicates over `l.` and `r.`),
//! thresholds and overrides.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The identity settings shipped by `tessera init` and `tessera demo`: person data with names,
/// emails, phones, birth dates and postal codes, as `sql/unify/identity_records.sql` writes them.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// How records are matched and clustered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Match probability from which a compared pair links two records.
    #[serde(default = "defaults::threshold")]
    pub threshold: f64,
    /// No customer grows beyond this many records: the weakest links are cut first.
    #[serde(default = "defaults::max_cluster_size")]
    pub max_cluster_size: usize,
    /// Two records the model compared and found at least this many bits more likely to be
    /// different people than one (the sum of their comparisons' weights, without the prior,
    /// at or below minus this) never become one customer through probabilistic links: the
    /// weakest link that would join them is refused (`contradicted`), so a household's
    /// members each linked to one shared record stay apart. Deterministic rules and
    /// `always_match` still hold. `inf` turns it off.
    #[serde(default = "defaults::cannot_link_bits")]
    pub cannot_link_bits: f64,
    /// Links (deterministic, override and accepted) clustered by the union-find in the
    /// coordinator's memory (24 bytes each, twice while sorted). Past it — or sooner, when they
    /// would take more than half of what `[engine] memory_limit` leaves — the links are written
    /// as a table and their connected components computed in SQL — on the cluster when there
    /// is one — by alternating large-star and small-star rounds; the union-find then runs
    /// only over the components a guard may act in. The customers are the same either way.
    #[serde(default = "defaults::max_union_find_links")]
    pub max_union_find_links: usize,
    /// Blocks (records sharing a blocking key) larger than this are not compared, and reported.
    #[serde(default = "defaults::max_block_size")]
    pub max_block_size: usize,
    /// Seed of the random pairs that estimate u: the same seed gives the same model.
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    /// Random record pairs sampled to estimate u.
    #[serde(default = "defaults::u_sample_pairs")]
    pub u_sample_pairs: usize,
    /// Upper bound on EM iterations estimating m.
    #[serde(default = "defaults::em_max_iterations")]
    pub em_max_iterations: usize,
    /// The share of true matches the deterministic rules are assumed to find: the pairs they
    /// link, divided by this, over all pairs, is the rules' prior. It starts one of EM's starts
    /// and checks the prior EM finds (a warning when 100× apart); the prior itself is EM's.
    #[serde(default = "defaults::deterministic_recall")]
    pub deterministic_recall: f64,
    /// A run keeps the model the last training run stored (`unify.match_model`), so adding
    /// records moves no earlier decision, until the record count has changed by more than this
    /// share since training; `tessera run --full-refresh` and a change to the matching
    /// settings retrain too.
    #[serde(default = "defaults::retrain_growth")]
    pub retrain_growth: f64,
    /// What a model warning does (EM not converged, a level-order constraint binding, a
    /// comparison that no longer tells matches apart, a prior far from the rules'): `warn`
    /// (the run goes on and says so) or `fail` (the identity job fails, nothing is published).
    #[serde(default)]
    pub on_model_warning: OnModelWarning,
    /// Identifier columns and their over-merge guards.
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    /// Deterministic rules, in order: records equal on every column of a rule are one customer.
    #[serde(default)]
    pub rules: Vec<KeyRule>,
    /// Blocking rules: only records equal on every column of one rule are compared.
    #[serde(default)]
    pub blocking: Vec<KeyRule>,
    /// Fellegi–Sunter comparisons.
    #[serde(default)]
    pub comparisons: Vec<Comparison>,
    /// A column of the records naming the true person of the records someone labelled (NULL
    /// elsewhere), as Splink's `estimate_m_from_label_column`: pairs of records with one label
    /// are known matches and count in m as they are (mixed with what EM estimates from the
    /// unlabelled pairs, so a few labels help and many dominate); pairs with two labels are
    /// known non-matches. `always_match` pairs count as labelled matches too.
    #[serde(default)]
    pub label_column: Option<String>,
    /// Record-key pairs that are always one customer.
    #[serde(default)]
    pub always_match: Vec<[String; 2]>,
    /// Record-key pairs that are never one customer.
    #[serde(default)]
    pub never_match: Vec<[String; 2]>,
}

mod defaults {
    pub fn threshold() -> f64 {
        0.95
    }
    pub fn max_cluster_size() -> usize {
        100
    }
    pub fn cannot_link_bits() -> f64 {
        10.0
    }
    pub fn max_union_find_links() -> usize {
        50_000_000
    }
    pub fn max_block_size() -> usize {
        1_000
    }
    pub fn seed() -> u64 {
        42
    }
    pub fn u_sample_pairs() -> usize {
        1_000_000
    }
    pub fn em_max_iterations() -> usize {
        1_000
    }
    pub fn deterministic_recall() -> f64 {
        0.8
    }
    pub fn retrain_growth() -> f64 {
        0.2
    }
}

/// What a model warning does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnModelWarning {
    /// Report it (run output, run log, `identity_stats`, report) and publish.
    #[default]
    Warn,
    /// Fail the identity job: nothing is published.
    Fail,
}

/// An identifier column and its guards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// The column of the records table.
    pub column: String,
    /// A value shared by more records than this (a family address, a shop's phone) is not used
    /// for matching, and reported.
    #[serde(default)]
    pub max_records_per_value: Option<usize>,
    /// Values never used for matching (`test@test.com`, `+10000000000`).
    #[serde(default)]
    pub blocked_values: Vec<String>,
    /// A value is shared (a household mailbox, a family phone) when two records holding it
    /// satisfy this SQL predicate over `l.<column>` and `r.<column>` — e.g. their first names
    /// differ. Shared values are not used for matching, and reported.
    #[serde(default)]
    pub shared_when: Option<String>,
    /// A customer holds at most one value (a national id, a web account): links that would
    /// join two values are dropped, and reported.
    #[serde(default)]
    pub unique_per_customer: bool,
}

/// A named set of columns that must all be equal (and not NULL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRule {
    /// The rule's name, in reports.
    pub name: String,
    /// The columns.
    pub on: Vec<String>,
    /// Blocking only: columns whose agreement the rule's key implies although the key is
    /// another column (a key derived from them: the sorted full name implies first and last
    /// name). Comparisons reading them are left out of the evidence EM reads for the rule's
    /// pairs, as those reading the key itself are: inside the block they agree by
    /// construction, and read as evidence they make every namesake look like a match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub implies: Vec<String>,
    /// Blocking only: this rule's own cap on a block's records, below `max_block_size`. A key
    /// made of names alone grows with the customer base (a block of n namesakes is n²/2
    /// pairs, most of them strangers with nothing else in common); its large blocks are
    /// skipped and reported like any over the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_block_size: Option<usize>,
}

/// One Fellegi–Sunter comparison: ordered levels, the first true one applies; none true is the
/// last level (`else`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// The comparison's name (a column of `match_pairs` is `gamma_<name>`).
    pub name: String,
    /// The column compared: with it, a NULL on either side is the null level (no evidence),
    /// and `term_frequency` adjusts exact agreement by how common the value is.
    #[serde(default)]
    pub column: Option<String>,
    /// A predicate for the null level instead of `l.column is null or r.column is null`.
    #[serde(default)]
    pub null_when: Option<String>,
    /// Adjust the first level's weight by the value's frequency (a rare surname counts more).
    #[serde(default)]
    pub term_frequency: bool,
    /// The agreement levels, strongest first.
    pub levels: Vec<Level>,
}

/// One agreement level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// The level's name, in reports.
    pub name: String,
    /// A SQL predicate over `l.<column>` and `r.<column>`.
    pub when: String,
}

impl IdentityConfig {
    /// The largest block `rule` compares: its own cap, never above `max_block_size`.
    pub fn block_cap(&self, rule: &KeyRule) -> usize {
        rule.max_block_size
            .map_or(self.max_block_size, |c| c.min(self.max_block_size))
    }

    /// Comparisons whose first level is plain equality on a column that is on its own a
    /// blocking rule: every pair agreeing there is compared, so u of that level is counted
    /// over all pairs rather than sampled. Returns (comparison, blocking rule) indexes.
    pub fn counted_exact_levels(&self) -> Vec<(usize, usize)> {
        let squash = |s: &str| -> String {
            s.chars()
                .filter(|c| !c.is_whitespace() && *c != '"')
                .flat_map(char::to_lowercase)
                .collect()
        };
        self.comparisons
            .iter()
            .enumerate()
            .filter_map(|(c, comparison)| {
                let column = comparison.column.as_deref()?;
                let first = comparison.levels.first()?;
                let col = squash(column);
                let when = squash(&first.when);
                if when != format!("l.{col}=r.{col}") && when != format!("r.{col}=l.{col}") {
                    return None;
                }
                let rule = self
                    .blocking
                    .iter()
                    .position(|b| b.on.len() == 1 && b.on[0] == column)?;
                Some((c, rule))
            })
            .collect()
    }

    /// A digest of the settings a trained model depends on: a stored model is reused only
    /// while it matches.
    pub fn model_signature(&self) -> String {
        use sha2::{Digest, Sha256};
        let parts = serde_json::json!({
            "identifiers": self.identifiers,
            "rules": self.rules,
            "blocking": self.blocking,
            "comparisons": self.comparisons,
            "seed": self.seed,
            "u_sample_pairs": self.u_sample_pairs,
            "em_max_iterations": self.em_max_iterations,
            "label_column": self.label_column,
            "deterministic_recall": self.deterministic_recall,
        });
        let digest = Sha256::digest(parts.to_string().as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A digest of the settings blocking rule `rule`'s compared pairs depend on: the keys'
    /// guards, that rule and the rules before it (their pairs are left out of its own), the
    /// block cap and the comparisons. While it and the records are unchanged, the rule yields
    /// the same pairs with the same comparison levels, so a run may read them from the
    /// published `match_pairs` instead of blocking again (a change of threshold, clustering,
    /// deterministic rules, overrides, or a blocking rule added after it).
    pub fn blocking_signature(&self, rule: usize) -> String {
        use sha2::{Digest, Sha256};
        let parts = serde_json::json!({
            "identifiers": self.identifiers,
            "blocking": self.blocking.get(..=rule),
            "max_block_size": self.max_block_size,
            "comparisons": self.comparisons,
            "label_column": self.label_column,
        });
        let digest = Sha256::digest(parts.to_string().as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The default settings (see [`DEFAULT_TOML`]).
    pub fn default_config() -> Self {
        #[derive(Deserialize)]
        struct File {
            identity: IdentityConfig,
        }
        toml::from_str::<File>(DEFAULT_TOML)
            .expect("the shipped identity settings parse")
            .identity
    }

    /// Checks the settings against the records' columns; each problem names its key.
    pub fn validate(&self, columns: &[String]) -> Result<(), String> {
        let known: BTreeSet<&str> = columns.iter().map(String::as_str).collect();
        let column = |key: &str, c: &str| {
            if known.contains(c) {
                Ok(())
            } else {
                Err(format!(
                    "`identity.{key}`: the records have no column `{c}` (they have {})",
                    columns.join(", ")
                ))
            }
        };
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!(
                "`identity.threshold`: {} is not a probability in [0, 1]",
                self.threshold
            ));
        }
        if !(self.deterministic_recall > 0.0 && self.deterministic_recall <= 1.0) {
            return Err(format!(
                "`identity.deterministic_recall`: {} is not in (0, 1]",
                self.deterministic_recall
            ));
        }
        if self.retrain_growth.is_nan() || self.retrain_growth < 0.0 {
            return Err(format!(
                "`identity.retrain_growth`: {} is not a share (0 retrains on every change)",
                self.retrain_growth
            ));
        }
        if self.cannot_link_bits.is_nan() || self.cannot_link_bits <= 0.0 {
            return Err(format!(
                "`identity.cannot_link_bits`: {} is not a positive number of bits (`inf` turns the guard off)",
                self.cannot_link_bits
            ));
        }
        if let Some(rule) = self
            .blocking
            .iter()
            .find(|r| r.max_block_size.is_some_and(|c| c < 2))
        {
            return Err(format!(
                "`identity.blocking` `{}`: max_block_size must be at least 2",
                rule.name
            ));
        }
        if self.max_cluster_size < 2 || self.max_block_size < 2 {
            return Err(
                "`identity.max_cluster_size` and `identity.max_block_size` must be at least 2"
                    .into(),
            );
        }
        if let Some(label) = &self.label_column {
            column("label_column", label)?;
        }
        for (i, id) in self.identifiers.iter().enumerate() {
            column(&format!("identifiers[{i}].column"), &id.column)?;
            if id
                .shared_when
                .as_deref()
                .is_some_and(|w| w.trim().is_empty())
            {
                return Err(format!(
                    "`identity.identifiers[{i}].shared_when`: empty predicate"
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (kind, rules) in [("rules", &self.rules), ("blocking", &self.blocking)] {
            for (i, rule) in rules.iter().enumerate() {
                if rule.on.is_empty() {
                    return Err(format!("`identity.{kind}[{i}].on`: no columns"));
                }
                for c in &rule.on {
                    column(&format!("{kind}[{i}].on"), c)?;
                }
                for c in &rule.implies {
                    if kind == "rules" {
                        return Err(format!(
                            "`identity.rules[{i}].implies`: only blocking rules imply columns"
                        ));
                    }
                    column(&format!("{kind}[{i}].implies"), c)?;
                }
                if !names.insert((kind, rule.name.as_str())) {
                    return Err(format!(
                        "`identity.{kind}`: two rules are named `{}`",
                        rule.name
                    ));
                }
            }
        }
        if self.blocking.len() > 63 {
            return Err("`identity.blocking`: at most 63 rules".into());
        }
        if self.blocking.is_empty() && !self.comparisons.is_empty() {
            return Err("`identity.blocking`: comparisons need at least one blocking rule".into());
        }
        let mut comparison_names = BTreeSet::new();
        for (i, c) in self.comparisons.iter().enumerate() {
            if !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            {
                return Err(format!(
                    "`identity.comparisons[{i}].name`: `{}` must be letters, digits and `_`",
                    c.name
                ));
            }
            if !comparison_names.insert(c.name.as_str()) {
                return Err(format!(
                    "`identity.comparisons`: two are named `{}`",
                    c.name
                ));
            }
            if let Some(col) = &c.column {
                column(&format!("comparisons[{i}].column"), col)?;
            } else if c.term_frequency {
                return Err(format!(
                    "`identity.comparisons[{i}]`: term_frequency needs a `column`"
                ));
            }
            if c.levels.is_empty() {
                return Err(format!("`identity.comparisons[{i}].levels`: none"));
            }
        }
        Ok(())
    }

    /// Whether comparison `c` reads any of `columns` (as `l.<col>` / `r.<col>` or its
    /// `column`): inside a block on those columns it agrees by construction.
    pub fn comparison_reads(&self, c: usize, columns: &[String]) -> bool {
        let comparison = &self.comparisons[c];
        columns.iter().any(|col| {
            comparison.column.as_deref() == Some(col.as_str())
                || comparison
                    .levels
                    .iter()
                    .map(|l| l.when.as_str())
                    .chain(comparison.null_when.as_deref())
                    .any(|sql| mentions(sql, col))
        })
    }

    /// The columns of `columns` the matching reads: identifiers, rule and blocking columns,
    /// comparison columns, and every column a level or `null_when` predicate names (any
    /// whole-word mention, quoted or not, so a predicate never misses a column it reads; a
    /// false mention only keeps a column). The identity engine holds only these.
    pub fn matching_columns(&self, columns: &[String]) -> Vec<String> {
        let mut named: BTreeSet<&str> = BTreeSet::new();
        named.extend(self.identifiers.iter().map(|i| i.column.as_str()));
        named.extend(self.label_column.as_deref());
        for rule in self.rules.iter().chain(&self.blocking) {
            named.extend(rule.on.iter().map(String::as_str));
        }
        let predicates: Vec<&str> = self
            .comparisons
            .iter()
            .flat_map(|c| {
                named.extend(c.column.as_deref());
                c.levels
                    .iter()
                    .map(|l| l.when.as_str())
                    .chain(c.null_when.as_deref())
            })
            .collect();
        columns
            .iter()
            .filter(|c| {
                named.contains(c.as_str()) || predicates.iter().any(|sql| names_word(sql, c))
            })
            .cloned()
            .collect()
    }

    /// Identifiers that must be unique per customer.
    pub fn unique_identifiers(&self) -> Vec<&str> {
        self.identifiers
            .iter()
            .filter(|i| i.unique_per_customer)
            .map(|i| i.column.as_str())
            .collect()
    }
}

/// Whether `sql` holds `word` as a whole word, ignoring ASCII case (`l.email`, `"Email"`,
/// `email`; not `email_domain`).
fn names_word(sql: &str, word: &str) -> bool {
    let (lower, word) = (sql.to_ascii_lowercase(), word.to_ascii_lowercase());
    let part = |c: char| c.is_ascii_alphanumeric() || c == '_';
    !word.is_empty()
        && lower.match_indices(&word).any(|(i, _)| {
            !lower[..i].chars().next_back().is_some_and(part)
                && !lower[i + word.len()..].chars().next().is_some_and(part)
        })
}

/// Whether `sql` reads `l.<column>` or `r.<column>` (a whole name, not a prefix).
fn mentions(sql: &str, column: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let column = column.to_ascii_lowercase();
    ["l.", "r."].iter().any(|alias| {
        let needle = format!("{alias}{column}");
        lower.match_indices(&needle).any(|(i, _)| {
            let before = lower[..i].chars().next_back();
            let after = lower[i + needle.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns of the demo's `unify.identity_records`.
    fn demo_columns() -> Vec<String> {
        [
            "record_key",
            "source",
            "record_id",
            "first_name",
            "first_name_root",
            "last_name",
            "last_name_sound",
            "name_key",
            "email",
            "phone",
            "phone_key",
            "birth_date",
            "postal_code",
            "city",
            "country",
            "loyalty_number",
            "web_user_id",
            "updated_at",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn the_matching_columns_are_those_the_settings_name() {
        let config = IdentityConfig::default_config();
        let columns = demo_columns();
        let kept = config.matching_columns(&columns);
        for c in [
            "first_name_root",
            "last_name_sound",
            "email",
            "web_user_id",
            "postal_code",
        ] {
            assert!(kept.iter().any(|k| k == c), "{c} missing from {kept:?}");
        }
        for c in ["record_id", "city", "country", "updated_at"] {
            assert!(!kept.iter().any(|k| k == c), "{c} kept in {kept:?}");
        }
        // A level naming a column only inside its SQL, in any case or quoted, keeps it.
        let mut config = config;
        config.comparisons[0].levels[0].when =
            "l.first_name = r.first_name and L.\"CITY\" = r.city".into();
        assert!(
            config
                .matching_columns(&columns)
                .iter()
                .any(|k| k == "city")
        );
        assert!(super::names_word("upper(country) = 'x'", "country"));
        assert!(!super::names_word(
            "l.country_code = r.country_code",
            "country"
        ));
    }

    #[test]
    fn mentions_reads_whole_names() {
        assert!(super::mentions("l.first_name = r.first_name", "first_name"));
        assert!(!super::mentions(
            "l.first_name_root = r.first_name_root",
            "first_name"
        ));
        assert!(super::mentions("jaro_winkler(l.email, r.email)", "email"));
        assert!(!super::mentions("l.email_domain = r.email_domain", "email"));
    }

    #[test]
    fn the_shipped_settings_parse_and_name_their_columns() {
        let config = IdentityConfig::default_config();
        assert!(!config.rules.is_empty());
        assert!(!config.blocking.is_empty());
        assert!(config.comparisons.len() >= 5);
        let columns = demo_columns();
        config.validate(&columns).unwrap();
        let err = config.validate(&columns[..5]).unwrap_err();
        assert!(err.contains("no column"), "{err}");
    }

    #[test]
    fn equality_levels_on_blocking_keys_are_counted() {
        let mut config = IdentityConfig::default_config();
        let names = |config: &IdentityConfig| -> Vec<String> {
            config
                .counted_exact_levels()
                .into_iter()
                .map(|(c, _)| config.comparisons[c].name.clone())
                .collect()
        };
        // email, phone and the loyalty card block alone and compare by plain equality first;
        // names do not block alone.
        assert_eq!(names(&config), ["email", "phone", "loyalty_number"]);
        // A first level that is not plain equality is sampled.
        let email = config
            .comparisons
            .iter_mut()
            .find(|c| c.name == "email")
            .unwrap();
        email.levels[0].when = "lower(l.email) = lower(r.email)".into();
        assert_eq!(names(&config), ["phone", "loyalty_number"]);
        // Equality written the other way round, with quotes, still counts.
        let phone = config
            .comparisons
            .iter_mut()
            .find(|c| c.name == "phone")
            .unwrap();
        phone.levels[0].when = "r.\"phone_key\"  =  l.\"phone_key\"".into();
        assert_eq!(names(&config), ["phone", "loyalty_number"]);
        // Without a blocking rule on the column alone, it is sampled.
        config.blocking.retain(|b| b.on != ["phone_key"]);
        assert_eq!(names(&config), ["loyalty_number"]);
    }

    #[test]
    fn the_model_signature_follows_matching_settings_only() {
        let config = IdentityConfig::default_config();
        let mut other = config.clone();
        other.threshold = 0.5;
        other.max_cluster_size = 7;
        assert_eq!(config.model_signature(), other.model_signature());
        other.comparisons[0].levels.pop();
        assert_ne!(config.model_signature(), other.model_signature());
        let mut seeded = config.clone();
        seeded.seed += 1;
        assert_ne!(config.model_signature(), seeded.model_signature());
        let mut bad = config.clone();
        bad.retrain_growth = -1.0;
        let err = bad.validate(&[]).unwrap_err();
        assert!(err.contains("retrain_growth"), "{err}");
        // The contradiction guard is a clustering setting (no retraining), off with `inf`.
        other = config.clone();
        other.cannot_link_bits = f64::INFINITY;
        assert_eq!(config.model_signature(), other.model_signature());
        other.validate(&demo_columns()).unwrap();
        other.cannot_link_bits = 0.0;
        let err = other.validate(&demo_columns()).unwrap_err();
        assert!(err.contains("cannot_link_bits"), "{err}");
    }
}
