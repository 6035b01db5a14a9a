use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::strings;

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "Levenshtein similarity in [0, 1]: 1 − edit distance / length of the longer string (DataFusion's built-in `levenshtein` gives the distance).",
        syntax_example = "levenshtein_similarity(a, b)",
        sql_example = r#"```sql
> select levenshtein_similarity('kitten', 'sitting');
0.5714285714285714
```"#,
        argument(name = "a", description = "A string."),
        argument(name = "b", description = "Another string.")
    )]
    pub struct LevenshteinSimilarity;
    name: "levenshtein_similarity",
    signature: strings(2),
    returns: DataType::Float64,
    eval: |args, rows| super::fast::map_pairs_with(args, rows, super::fast::Matcher::normalized_levenshtein),
}
