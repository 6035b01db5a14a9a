use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_pairs, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "Token-set ratio: Levenshtein similarity between the shared tokens and each side's tokens, so extra words on one side cost little (`Anna Smith` = `Anna Maria Smith`).",
        syntax_example = "token_set_ratio(a, b)",
        sql_example = r#"```sql
> select token_set_ratio('Anna Smith', 'Anna Maria Smith');
1.0
```"#,
        argument(name = "a", description = "A string."),
        argument(name = "b", description = "Another string.")
    )]
    pub struct TokenSetRatio;
    name: "token_set_ratio",
    signature: strings(2),
    returns: DataType::Float64,
    eval: |args, rows| map_pairs(args, rows, super::token_set_ratio),
}
