use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings_between};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Email functions"),
        description = "Normalises an email address: trims, folds Unicode (NFKC) and lower-cases it, \
        then applies the rules of an ad platform when one is given: `meta`, `tiktok`, `linkedin` \
        (trim and lower-case), `google` (also removes the dots of gmail.com and googlemail.com \
        local parts), `uid2` (for gmail.com, also removes dots and a `+` suffix). Returns NULL \
        when the text is not an email address.",
        syntax_example = "email_normalize(email[, platform])",
        sql_example = r#"```sql
> select email_normalize('  J.Doe+News@GMail.com ', 'google');
+--------------------------------------------------------------+
| email_normalize(Utf8("  J.Doe+News@GMail.com "),Utf8("google")) |
+--------------------------------------------------------------+
| jdoe+news@gmail.com                                          |
+--------------------------------------------------------------+
```"#,
        argument(name = "email", description = "The address, as typed."),
        argument(name = "platform", description = "`default` (when omitted), `meta`, `google`, `tiktok`, `linkedin` or `uid2`.")
    )]
    pub struct EmailNormalize;
    name: "email_normalize",
    signature: strings_between(1, 2),
    returns: DataType::Utf8,
    eval: |args, rows| {
        // An unknown platform given as a constant is a mistake in the query: say so.
        if let Some(p) = crate::util::constant_str(args, 1)
            && let Err(e) = super::for_platform("a@example.com", p)
        {
            return exec_err!("email_normalize: {e}");
        }
        map_strings(args, rows, |v| {
            let platform = if v.len() > 1 { v[1]? } else { "default" };
            super::for_platform(v[0]?, platform).ok().flatten()
        })
    },
}
