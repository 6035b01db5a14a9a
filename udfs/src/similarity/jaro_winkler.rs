use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::strings;

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "Jaro–Winkler similarity in [0, 1]: Jaro with a bonus for a common prefix of up to 4 characters (scaling 0.1), the standard measure for comparing names.",
        syntax_example = "jaro_winkler(a, b)",
        sql_example = r#"```sql
> select jaro_winkler('MARTHA', 'MARHTA');
0.9611111111111111
```"#,
        argument(name = "a", description = "A string."),
        argument(name = "b", description = "Another string.")
    )]
    pub struct JaroWinkler;
    name: "jaro_winkler",
    signature: strings(2),
    returns: DataType::Float64,
    eval: |args, rows| super::fast::map_pairs_with(args, rows, super::fast::Matcher::jaro_winkler),
}
