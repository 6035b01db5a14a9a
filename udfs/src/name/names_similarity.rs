use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Name functions"),
        description = "How alike two first names are, nicknames understood: 1.0 when they are equivalent (see `names_equivalent`), otherwise the best Jaro–Winkler similarity between any name in one's nickname family and any in the other's — so a typo on top of a nickname still scores high (`Bqtty` vs `Elizabeth` scores as `Bqtty` vs `Betty`). For telling a household's members apart from one person's spelling variants.",
        syntax_example = "names_similarity(a, b)",
        sql_example = r#"```sql
> select names_similarity('Bill', 'William'), round(names_similarity('Bqtty', 'Elizabeth'), 2), round(names_similarity('Mary', 'George'), 2);
1.0 0.88 0.5
```"#,
        argument(name = "a", description = "A first name."),
        argument(name = "b", description = "Another first name.")
    )]
    pub struct NamesSimilarity;
    name: "names_similarity",
    signature: strings(2),
    returns: DataType::Float64,
    eval: |args, rows| map_strings(args, rows, |v| super::similarity(v[0]?, v[1]?)),
}
