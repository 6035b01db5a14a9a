use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Name functions"),
        description = "A name folded for comparison: accents transliterated (any script to ASCII), lower case, punctuation and hyphens as spaces, honorifics before it (Mr, Dr, Mme, Herr...) and suffixes after it (Jr, III, PhD...) removed. NULL when nothing is left.",
        syntax_example = "name_normalize(name)",
        sql_example = r#"```sql
> select name_normalize('  Dr. José MARÍA-López, Jr. ');
jose maria lopez
```"#,
        argument(name = "name", description = "A first, last or full name.")
    )]
    pub struct NameNormalize;
    name: "name_normalize",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::normalize(v[0]?)),
}
