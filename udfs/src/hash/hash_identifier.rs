use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Hashing functions"),
        description = "Normalises an identifier the way an ad platform documents it, then hashes \
        it with SHA-256: lower-case hex for `meta`, `google`, `tiktok`, `linkedin` and `default`; \
        base64 for `uid2`. Kinds: `email` (see `email_normalize`), `phone` (international form \
        such as `+44 20 7946 0958`; `meta` hashes the digits without `+`, others E.164 with `+`; \
        `linkedin` takes no phones), `first_name`, `last_name`, `city`, `state` (lower case, \
        letters and digits only), `zip` (lower case, no spaces or dashes), `country` (two-letter \
        code), `external_id` (trimmed). Returns NULL when the value cannot be used (an invalid \
        email, a phone without country code, empty text).",
        syntax_example = "hash_identifier(value, kind, platform)",
        sql_example = r#"```sql
> select hash_identifier('User@Example.com ', 'email', 'uid2');
+------------------------------------------------------------------------+
| hash_identifier(Utf8("User@Example.com "),Utf8("email"),Utf8("uid2")) |
+------------------------------------------------------------------------+
| tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ=                           |
+------------------------------------------------------------------------+
```"#,
        argument(name = "value", description = "The identifier, as stored."),
        argument(name = "kind", description = "`email`, `phone`, `first_name`, `last_name`, `city`, `state`, `zip`, `country` or `external_id`."),
        argument(name = "platform", description = "`meta`, `google`, `tiktok`, `linkedin`, `uid2` or `default`.")
    )]
    pub struct HashIdentifier;
    name: "hash_identifier",
    signature: strings(3),
    returns: DataType::Utf8,
    eval: |args, rows| {
        // A constant unknown kind or platform is a mistake in the query: say so.
        let constant = |i: usize| crate::util::constant_str(args, i).map(str::to_string);
        let kind = constant(1).unwrap_or_else(|| "email".into());
        let platform = constant(2).unwrap_or_else(|| "default".into());
        if let Err(e) = super::hash("x", &kind, &platform) {
            return exec_err!("hash_identifier: {e}");
        }
        map_strings(args, rows, |v| super::hash(v[0]?, v[1]?, v[2]?).ok().flatten())
    },
}
