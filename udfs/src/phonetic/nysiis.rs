use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Phonetic functions"),
        description = "NYSIIS code (New York State Identification and Intelligence System) of a name.",
        syntax_example = "nysiis(name)",
        sql_example = r#"```sql
> select nysiis('Macintosh');
MCANT
```"#,
        argument(name = "name", description = "A name; transliterated to ASCII letters first.")
    )]
    pub struct Nysiis;
    name: "nysiis",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::nysiis(v[0]?)),
}
