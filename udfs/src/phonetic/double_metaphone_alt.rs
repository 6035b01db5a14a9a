use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Phonetic functions"),
        description = "Double Metaphone alternate code: another plausible pronunciation (Germanic, Slavic...), equal to the primary code when there is none.",
        syntax_example = "double_metaphone_alt(name)",
        sql_example = r#"```sql
> select double_metaphone_alt('Smith');
XMT
```"#,
        argument(name = "name", description = "A name; transliterated to ASCII letters first.")
    )]
    pub struct DoubleMetaphoneAlt;
    name: "double_metaphone_alt",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::double_metaphone_alt(v[0]?)),
}
