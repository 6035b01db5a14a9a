use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Phone functions"),
        description = "A key for comparing phone numbers whose country is unknown or which do not validate: the last nine digits of the number once the international prefix (`+`, `00`, `011`) and the trunk `0` are gone. The same number typed in national or international form gives the same key (`06 12 34 56 78` and `+33 6 12 34 56 78`, `(415) 555-2671` and `+1 415 555 2671`). NULL when fewer than seven digits remain. Compare keys, do not dial them: two countries' numbers can share a key (rarely), so use it beside `phone_e164`, not instead of it.",
        syntax_example = "phone_key(phone)",
        sql_example = r#"```sql
> select phone_key('06 12 34 56 78'), phone_key('+33 6 12 34 56 78'), phone_key('(415) 555-2671'), phone_key('12');
612345678 612345678 155552671 NULL
```"#,
        argument(name = "phone", description = "The number as typed.")
    )]
    pub struct PhoneKey;
    name: "phone_key",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::key(v[0]?)),
}
