use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_pairs, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "Levenshtein similarity of the lower-cased tokens sorted alphabetically: word order does not matter (`Smith John` = `john SMITH`).",
        syntax_example = "token_sort_ratio(a, b)",
        sql_example = r#"```sql
> select token_sort_ratio('Smith John', 'john SMITH');
1.0
```"#,
        argument(name = "a", description = "A string."),
        argument(name = "b", description = "Another string.")
    )]
    pub struct TokenSortRatio;
    name: "token_sort_ratio",
    signature: strings(2),
    returns: DataType::Float64,
    eval: |args, rows| map_pairs(args, rows, super::token_sort_ratio),
}
