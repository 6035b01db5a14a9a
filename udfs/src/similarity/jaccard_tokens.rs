use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_pairs, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "Jaccard similarity of the sets of lower-cased alphanumeric tokens: shared tokens / all tokens (1 when both have none).",
        syntax_example = "jaccard_tokens(a, b)",
        sql_example = r#"```sql
> select jaccard_tokens('Anna Maria Smith', 'smith, anna');
0.6666666666666666
```"#,
        argument(name = "a", description = "A string."),
        argument(name = "b", description = "Another string.")
    )]
    pub struct JaccardTokens;
    name: "jaccard_tokens",
    signature: strings(2),
    returns: DataType::Float64,
    eval: |args, rows| map_pairs(args, rows, super::jaccard_tokens),
}
