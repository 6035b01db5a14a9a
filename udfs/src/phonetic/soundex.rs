use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Phonetic functions"),
        description = "American Soundex code (a letter and three digits) of a name; NULL when it has no letters.",
        syntax_example = "soundex(name)",
        sql_example = r#"```sql
> select soundex('Robert');
R163
```"#,
        argument(name = "name", description = "A name; transliterated to ASCII letters first.")
    )]
    pub struct Soundex;
    name: "soundex",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::soundex(v[0]?)),
}
