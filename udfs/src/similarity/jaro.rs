use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::strings;

crate::string_function! {
    #[user_doc(
        doc_section(label = "Similarity functions"),
        description = "Jaro similarity in [0, 1]: the share of matching characters within a window, penalised by transpositions.",
        syntax_example = "jaro(a, b)",
        sql_example = r#"```sql
> select jaro('MARTHA', 'MARHTA');
0.9444444444444445
```"#,
        argument(name = "a", description = "A string."),
        argument(name = "b", description = "Another string.")
    )]
    pub struct Jaro;
    name: "jaro",
    signature: strings(2),
    returns: DataType::Float64,
    eval: |args, rows| super::fast::map_pairs_with(args, rows, super::fast::Matcher::jaro),
}
