use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_pairs, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "Damerau–Levenshtein distance: insertions, deletions, substitutions and transpositions of adjacent characters (unrestricted).",
        syntax_example = "damerau_levenshtein(a, b)",
        sql_example = r#"```sql
> select damerau_levenshtein('ca', 'abc');
2
```"#,
        argument(name = "a", description = "A string."),
        argument(name = "b", description = "Another string.")
    )]
    pub struct DamerauLevenshtein;
    name: "damerau_levenshtein",
    signature: strings(2),
    returns: DataType::Int64,
    eval: |args, rows| map_pairs(args, rows, |a, b| super::fast::damerau_levenshtein(a, b) as i64),
}
