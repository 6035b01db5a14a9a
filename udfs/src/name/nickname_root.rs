use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Name functions"),
        description = "The formal first name a nickname stands for (`Bill` → `william`), from the nickname table shipped with Tessera; the normalised name itself when it is not a known nickname; the alphabetically first formal name when a nickname is shared (`Pat` → `patricia`) — use `names_equivalent` to compare.",
        syntax_example = "nickname_root(first_name)",
        sql_example = r#"```sql
> select nickname_root('Bill');
william
```"#,
        argument(name = "first_name", description = "A first name.")
    )]
    pub struct NicknameRoot;
    name: "nickname_root",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::root(v[0]?)),
}
