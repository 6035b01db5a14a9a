use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Email functions"),
        description = "True when the text is a plausible email address after trimming: one `@`, \
        a local part of at most 64 characters without leading, trailing or doubled dots, and a \
        domain of at least two labels with a non-numeric top-level domain. No DNS lookup. NULL \
        for NULL.",
        syntax_example = "email_is_valid(email)",
        sql_example = r#"```sql
> select email_is_valid('john@example.com'), email_is_valid('john@example');
+--------------------------------------------+----------------------------------------+
| email_is_valid(Utf8("john@example.com")) | email_is_valid(Utf8("john@example")) |
+--------------------------------------------+----------------------------------------+
| true                                       | false                                  |
+--------------------------------------------+----------------------------------------+
```"#,
        argument(name = "email", description = "The text to check.")
    )]
    pub struct EmailIsValid;
    name: "email_is_valid",
    signature: strings(1),
    returns: DataType::Boolean,
    eval: |args, rows| map_strings(args, rows, |v| Some(super::parse(v[0]?).is_some())),
}
