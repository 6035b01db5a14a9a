use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Email functions"),
        description = "The mailbox an address delivers to, for matching records: normalised \
        (trim, NFKC, lower case), `+` suffixes removed, and for gmail.com and googlemail.com the \
        dots removed and the domain written gmail.com. Returns NULL when the text is not an \
        email address. Not for ad platforms (use `email_normalize` with the platform).",
        syntax_example = "email_canonical(email)",
        sql_example = r#"```sql
> select email_canonical('J.O.H.N+promo@googlemail.com');
+----------------------------------------------------+
| email_canonical(Utf8("J.O.H.N+promo@googlemail.com")) |
+----------------------------------------------------+
| john@gmail.com                                     |
+----------------------------------------------------+
```"#,
        argument(name = "email", description = "The address, as typed.")
    )]
    pub struct EmailCanonical;
    name: "email_canonical",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::canonical(v[0]?)),
}
