use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::strings_between;

crate::string_function! {
    #[user_doc(
        doc_section(label = "Phone functions"),
        description = "The phone number in E.164 (`+` country code and number, no spaces), or NULL when it cannot be parsed or is not a valid number for its country (libphonenumber metadata).",
        syntax_example = "phone_e164(phone[, default_region[, other_region ...]])",
        sql_example = r#"```sql
> select phone_e164('020 7946 0958', 'US', 'GB', 'FR');
+442079460958
```"#,
        argument(name = "phone", description = "The number as typed: national (read in `default_region`) or international (`+`, or the region's own international prefix, and a country code)."),
        argument(name = "default_region", description = "ISO 3166 alpha-2 region for national numbers (`US`, `GB`, `FR`...); without it only international numbers parse. Further regions are tried in order when the number is not valid in the ones before (a NULL region is skipped); a number written with `+` and its country code is read once, whatever the regions.")
    )]
    pub struct PhoneE164;
    name: "phone_e164",
    signature: strings_between(1, 1 + super::MAX_REGIONS),
    returns: DataType::Utf8,
    eval: |args, rows| super::eval_regions("phone_e164", args, rows),
}
