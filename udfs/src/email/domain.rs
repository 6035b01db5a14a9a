use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Email functions"),
        description = "The lower-cased domain of an email address, or NULL when the text is not \
        an email address.",
        syntax_example = "email_domain(email)",
        sql_example = r#"```sql
> select email_domain(' Ann@Example.ORG');
+------------------------------------+
| email_domain(Utf8(" Ann@Example.ORG")) |
+------------------------------------+
| example.org                        |
+------------------------------------+
```"#,
        argument(name = "email", description = "The address.")
    )]
    pub struct EmailDomain;
    name: "email_domain",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::parse(v[0]?).map(|(_, d)| d)),
}
