use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::strings_between;

crate::string_function! {
    #[user_doc(
        doc_section(label = "Phone functions"),
        description = "True when the text parses as a valid phone number for its country (libphonenumber metadata); NULL for NULL.",
        syntax_example = "phone_is_valid(phone[, default_region])",
        sql_example = r#"```sql
> select phone_is_valid('(415) 555-2671', 'US');
true
```"#,
        argument(name = "phone", description = "The number as typed: national (read in `default_region`) or international (`+`, or the region's own international prefix, and a country code)."),
        argument(name = "default_region", description = "ISO 3166 alpha-2 region for national numbers (`US`, `GB`, `FR`...); without it only international numbers parse.")
    )]
    pub struct PhoneIsValid;
    name: "phone_is_valid",
    signature: strings_between(1, 2),
    returns: DataType::Boolean,
    eval: |args, rows| super::eval("phone_is_valid", args, rows, |p, r| Some(super::e164(p, r).is_some())),
}
