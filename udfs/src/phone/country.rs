use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::strings_between;

crate::string_function! {
    #[user_doc(
        doc_section(label = "Phone functions"),
        description = "The ISO 3166 alpha-2 region of a valid phone number (`+44 20 7946 0958` → `GB`), or NULL.",
        syntax_example = "phone_country(phone[, default_region])",
        sql_example = r#"```sql
> select phone_country('+44 20 7946 0958', 'US');
GB
```"#,
        argument(name = "phone", description = "The number as typed: national (read in `default_region`) or international (`+`, or the region's own international prefix, and a country code)."),
        argument(name = "default_region", description = "ISO 3166 alpha-2 region for national numbers (`US`, `GB`, `FR`...); without it only international numbers parse.")
    )]
    pub struct PhoneCountry;
    name: "phone_country",
    signature: strings_between(1, 2),
    returns: DataType::Utf8,
    eval: |args, rows| super::eval("phone_country", args, rows, super::country),
}
