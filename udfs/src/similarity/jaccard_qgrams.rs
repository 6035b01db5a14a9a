use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_pairs, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "Jaccard similarity of the sets of character bigrams of the lower-cased strings: robust to word order and small typos (1 when both are empty).",
        syntax_example = "jaccard_qgrams(a, b)",
        sql_example = r#"```sql
> select jaccard_qgrams('night', 'nacht');
0.14285714285714285
```"#,
        argument(name = "a", description = "A string."),
        argument(name = "b", description = "Another string.")
    )]
    pub struct JaccardQgrams;
    name: "jaccard_qgrams",
    signature: strings(2),
    returns: DataType::Float64,
    eval: |args, rows| map_pairs(args, rows, super::jaccard_qgrams),
}
