use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Hashing functions"),
        description = "The SHA-256 digest of the UTF-8 text, as 64 lower-case hex characters. \
        NULL for NULL. Does not normalise: see `hash_identifier` for platform-ready hashes.",
        syntax_example = "sha256_hex(text)",
        sql_example = r#"```sql
> select sha256_hex('abc');
+------------------------------------------------------------------+
| sha256_hex(Utf8("abc"))                                          |
+------------------------------------------------------------------+
| ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad |
+------------------------------------------------------------------+
```"#,
        argument(name = "text", description = "The text to hash.")
    )]
    pub struct Sha256Hex;
    name: "sha256_hex",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| Some(super::sha256_hex(v[0]?))),
}
