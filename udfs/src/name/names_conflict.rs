use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Name functions"),
        description = "True when two records' names clearly belong to different people, for telling a household's shared mailbox, phone or card from one person's spelling variants. Names are compatible (false) when the first names are nickname-equivalent or alike (`names_similarity` ≥ 0.85), one typo apart, one is the other's initial, or when first and last names are swapped between the records (`Smith John` ≈ `John Smith`). Two established given names (census frequency lists) are two people's unless they sound alike or one is the other with a letter dropped: `Dale` is no typo of `Dave`, `Mark` none of `Mary`. NULL when either first name is NULL or empty (no evidence either way); last names may be NULL.",
        syntax_example = "names_conflict(first_a, last_a, first_b, last_b)",
        sql_example = r#"```sql
> select names_conflict('Mary', 'Smith', 'George', 'Smith'), names_conflict('Amy', 'Lee', 'Ami', 'Lee'), names_conflict('Smith', 'John', 'John', 'Smith'), names_conflict('J.', 'Smith', 'John', 'Smith');
true false false false
```"#,
        argument(name = "first_a", description = "The first record's first name."),
        argument(name = "last_a", description = "The first record's last name (may be NULL)."),
        argument(name = "first_b", description = "The second record's first name."),
        argument(name = "last_b", description = "The second record's last name (may be NULL).")
    )]
    pub struct NamesConflict;
    name: "names_conflict",
    signature: strings(4),
    returns: DataType::Boolean,
    eval: |args, rows| map_strings(args, rows, |v| super::conflict(v[0]?, v[1], v[2]?, v[3])),
}
