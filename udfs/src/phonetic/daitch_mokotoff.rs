use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Phonetic functions"),
        description = "Daitch–Mokotoff Soundex of a name: six-digit codes built for Slavic, Germanic \
and Yiddish surnames (Eastern European spellings that American Soundex separates). Letters with \
more than one plausible sound give several codes, joined with `|` in a fixed order; two names \
sound alike when their code lists share a code. NULL when the name has no letters.",
        syntax_example = "daitch_mokotoff(name)",
        sql_example = r#"```sql
> select daitch_mokotoff('Peters'), daitch_mokotoff('Peterson'), daitch_mokotoff('Moskowitz');
734000|739400 734600|739460 645740
```"#,
        argument(name = "name", description = "A name; transliterated to ASCII letters first.")
    )]
    pub struct DaitchMokotoff;
    name: "daitch_mokotoff",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::daitch_mokotoff(v[0]?)),
}
