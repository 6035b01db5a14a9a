//! Locations and object stores: local paths, `file://`, `memory://`, `s3://`, `gs://`, `az://`.
//!
//! One [`Storage`] per engine builds each store once (per scheme and bucket) from the project's
//! storage options plus the usual cloud environment variables, and hands the same instance to
//! DataFusion and to delta-rs, so that both see the same bytes (this matters for `memory://`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};
use url::Url;

use crate::error::{Error, Result};

/// Turns a location as a user writes it (a URL, an absolute path, or a path relative to `base`)
/// into a URL. Folder locations (tables) get a trailing slash so that joins stay inside them.
pub fn resolve_location(location: &str, base: &Path, is_dir: bool) -> Result<Url> {
    let invalid = |message: String| Error::InvalidLocation {
        location: location.to_string(),
        message,
    };
    if location.trim().is_empty() {
        return Err(invalid("the location is empty".into()));
    }
    let has_scheme = location
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme.chars().all(|c| c.is_ascii_alphanumeric()));
    let mut url = if has_scheme {
        let url = Url::parse(location).map_err(|e| invalid(e.to_string()))?;
        match url.scheme() {
            "file" | "memory" | "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" | "azure" => url,
            other => {
                return Err(invalid(format!(
                    "unsupported scheme `{other}` (use a local path, file://, memory://, s3://, gs:// or az://)"
                )));
            }
        }
    } else {
        let path = Path::new(location);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        };
        let path = normalize_path(&path);
        Url::from_file_path(&path).map_err(|()| invalid("not a valid file path".into()))?
    };
    if is_dir && !url.path().ends_with('/') && !has_glob(url.path()) {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// True when a path holds a glob pattern (`*`, `?`, `[`).
pub fn has_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Removes `.` and `..` components without touching the file system (the path may not exist yet).
fn normalize_path(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Checks that every key of a storage-options table is one that some object store understands,
/// so that a typo (`aws_endpont`) is an error rather than silently ignored.
pub fn validate_storage_option(key: &str) -> std::result::Result<(), String> {
    let lower = key.to_ascii_lowercase();
    if is_tessera_option(&lower)
        || AmazonS3ConfigKey::from_str(&lower).is_ok()
        || GoogleConfigKey::from_str(&lower).is_ok()
        || AzureConfigKey::from_str(&lower).is_ok()
        || ClientConfigKey::from_str(&lower).is_ok()
    {
        Ok(())
    } else {
        Err(format!(
            "unknown storage option `{key}` (expected an object_store key such as aws_endpoint, \
             aws_region, aws_access_key_id, google_service_account, azure_storage_account_name, \
             allow_http, timeout; or max_retries / retry_timeout)"
        ))
    }
}

fn is_tessera_option(key: &str) -> bool {
    matches!(key, "max_retries" | "retry_timeout")
}

/// The object stores of one engine, built lazily per scheme and bucket.
#[derive(Debug, Default)]
pub struct Storage {
    options: BTreeMap<String, String>,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Storage {
    /// Storage with the given options (object_store configuration keys such as `aws_endpoint`).
    pub fn new(options: BTreeMap<String, String>) -> Self {
        Self {
            options: options
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            stores: Mutex::default(),
        }
    }

    /// The storage options, as given to delta-rs.
    pub fn options(&self) -> HashMap<String, String> {
        self.options
            .iter()
            .filter(|(k, _)| !is_tessera_option(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The URL of the root of the store holding `url` (`s3://bucket/`, `file:///`, `memory:///`).
    pub fn root_url(url: &Url) -> Url {
        let mut root = url.clone();
        root.set_path("/");
        root.set_query(None);
        root.set_fragment(None);
        root
    }

    /// The store for `url`, rooted at its bucket (or the file system root).
    pub fn store_for(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let key = Self::root_url(url).to_string();
        let mut stores = self.stores.lock().expect("storage lock poisoned");
        if let Some(store) = stores.get(&key) {
            return Ok(store.clone());
        }
        let store = self.build(url)?;
        stores.insert(key, store.clone());
        Ok(store)
    }

    /// Uses `store` for every URL under `url`'s bucket; returns the store it replaces.
    pub fn register(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        let key = Self::root_url(url).to_string();
        self.stores
            .lock()
            .expect("storage lock poisoned")
            .insert(key, store)
    }

    fn retry(&self) -> Result<RetryConfig> {
        let max_retries = match self.options.get("max_retries") {
            Some(v) => v.parse().map_err(|_| Error::InvalidLocation {
                location: "storage.max_retries".into(),
                message: format!("`{v}` is not a whole number"),
            })?,
            None => 3,
        };
        let retry_timeout = match self.options.get("retry_timeout") {
            Some(v) => parse_duration(v).ok_or_else(|| Error::InvalidLocation {
                location: "storage.retry_timeout".into(),
                message: format!("`{v}` is not a duration such as 30s or 2m"),
            })?,
            None => Duration::from_secs(30),
        };
        Ok(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries,
            retry_timeout,
        })
    }

    fn build(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let storage_err = |source| Error::Storage {
            url: url.to_string(),
            source,
        };
        // Fail fast on an unreachable endpoint rather than retrying for minutes; users can raise
        // these through the storage options.
        let mut client: Vec<(ClientConfigKey, String)> = vec![
            (ClientConfigKey::ConnectTimeout, "5s".into()),
            (ClientConfigKey::Timeout, "120s".into()),
        ];
        client.retain(|(k, _)| !self.options.contains_key(k.as_ref()));
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => Arc::new(LocalFileSystem::new()),
            "memory" => Arc::new(InMemory::new()),
            "s3" | "s3a" => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(url.host_str().unwrap_or_default())
                    .with_retry(self.retry()?);
                for (k, v) in client {
                    b = b.with_config(AmazonS3ConfigKey::Client(k), v);
                }
                for (k, v) in &self.options {
                    if let Ok(key) = AmazonS3ConfigKey::from_str(k) {
                        b = b.with_config(key, v);
                    }
                }
                Arc::new(b.build().map_err(storage_err)?)
            }
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(url.host_str().unwrap_or_default())
                    .with_retry(self.retry()?);
                for (k, v) in client {
                    b = b.with_config(GoogleConfigKey::Client(k), v);
                }
                for (k, v) in &self.options {
                    if let Ok(key) = GoogleConfigKey::from_str(k) {
                        b = b.with_config(key, v);
                    }
                }
                Arc::new(b.build().map_err(storage_err)?)
            }
            "az" | "abfs" | "abfss" | "azure" => {
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_url(url.as_str())
                    .with_retry(self.retry()?);
                for (k, v) in client {
                    b = b.with_config(AzureConfigKey::Client(k), v);
                }
                for (k, v) in &self.options {
                    if let Ok(key) = AzureConfigKey::from_str(k) {
                        b = b.with_config(key, v);
                    }
                }
                Arc::new(b.build().map_err(storage_err)?)
            }
            other => {
                return Err(Error::InvalidLocation {
                    location: url.to_string(),
                    message: format!("unsupported scheme `{other}`"),
                });
            }
        };
        Ok(store)
    }
}

/// Parses a duration as people write it (`30s`, `2m`, `1h 30m`, `500ms`: humantime's
/// format) or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            Some(Duration::from_secs_f64(seconds))
        }
        Ok(_) => None,
        Err(_) => humantime::parse_duration(text).ok(),
    }
}

/// The path of `url` inside its store (no leading slash), as object_store wants it.
pub fn object_path(url: &Url) -> object_store::path::Path {
    let decoded = percent_decode(url.path());
    object_store::path::Path::from(decoded.trim_start_matches('/'))
}

pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_project() {
        let url = resolve_location("data/crm.csv", Path::new("/p/retail"), false).unwrap();
        assert_eq!(url.as_str(), "file:///p/retail/data/crm.csv");
        let url = resolve_location("../w", Path::new("/p/retail"), true).unwrap();
        assert_eq!(url.as_str(), "file:///p/w/");
    }

    #[test]
    fn urls_keep_their_scheme_and_tables_get_a_slash() {
        let url = resolve_location("s3://bucket/wh", Path::new("/x"), true).unwrap();
        assert_eq!(url.as_str(), "s3://bucket/wh/");
        let url = resolve_location("memory:///t", Path::new("/x"), true).unwrap();
        assert_eq!(url.as_str(), "memory:///t/");
        let url = resolve_location("s3://b/x/*.parquet", Path::new("/x"), true).unwrap();
        assert_eq!(url.path(), "/x/*.parquet");
    }

    #[test]
    fn unknown_schemes_and_empty_locations_are_errors() {
        let err = resolve_location("ftp://h/x", Path::new("/"), false).unwrap_err();
        assert!(
            err.to_string().contains("unsupported scheme `ftp`"),
            "{err}"
        );
        assert!(resolve_location("  ", Path::new("/"), false).is_err());
    }

    #[test]
    fn storage_option_typos_are_rejected() {
        assert!(validate_storage_option("aws_endpoint").is_ok());
        assert!(validate_storage_option("AWS_REGION").is_ok());
        assert!(validate_storage_option("allow_http").is_ok());
        let err = validate_storage_option("aws_endpont").unwrap_err();
        assert!(err.contains("aws_endpont"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("-5"), None);
        assert_eq!(percent_decode("a%20b%zz%41"), "a b%zzA");
    }

    #[test]
    fn object_paths_are_decoded() {
        let url = Url::parse("s3://b/a%20b/c.parquet").unwrap();
        assert_eq!(object_path(&url).as_ref(), "a b/c.parquet");
    }
}
