use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Phonetic functions"),
        description = "Double Metaphone primary code of a name (Philips 2000): spelling variants of one pronunciation share it.",
        syntax_example = "double_metaphone(name)",
        sql_example = r#"```sql
> select double_metaphone('Smith');
SM0
```"#,
        argument(name = "name", description = "A name; transliterated to ASCII letters first.")
    )]
    pub struct DoubleMetaphone;
    name: "double_metaphone",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::double_metaphone(v[0]?)),
}
