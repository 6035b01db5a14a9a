use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_pairs, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "Length of the longest common substring over the length of the longer string, in characters (1 when both are empty).",
        syntax_example = "lcs_ratio(a, b)",
        sql_example = r#"```sql
> select lcs_ratio('Johnson', 'Johnston');
0.625
```"#,
        argument(name = "a", description = "A string."),
        argument(name = "b", description = "Another string.")
    )]
    pub struct LcsRatio;
    name: "lcs_ratio",
    signature: strings(2),
    returns: DataType::Float64,
    eval: |args, rows| map_pairs(args, rows, super::lcs_ratio),
}
