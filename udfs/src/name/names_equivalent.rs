use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Name functions"),
        description = "True when two first names may be the same person's: equal once normalised, or sharing a formal name in the nickname table (`Bill` ≈ `William` ≈ `Will`; `Pat` ≈ `Patrick` and `Pat` ≈ `Patricia`, but not `Patrick` ≈ `Patricia`).",
        syntax_example = "names_equivalent(a, b)",
        sql_example = r#"```sql
> select names_equivalent('Peggy', 'Margaret');
true
```"#,
        argument(name = "a", description = "A first name."),
        argument(name = "b", description = "Another first name.")
    )]
    pub struct NamesEquivalent;
    name: "names_equivalent",
    signature: strings(2),
    returns: DataType::Boolean,
    eval: |args, rows| {
        let mut memo = super::EquivalentMemo::default();
        map_strings(args, rows, |v| memo.equivalent(v[0]?, v[1]?))
    },
}
