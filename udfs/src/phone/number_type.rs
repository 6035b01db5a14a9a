use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::strings_between;

crate::string_function! {
    #[user_doc(
        doc_section(label = "Phone functions"),
        description = "The line type of a valid phone number: `mobile`, `fixed_line`, `fixed_line_or_mobile`, `toll_free`, `premium_rate`, `shared_cost`, `voip`, `personal`, `pager`, `uan`, `voicemail` or `unknown`; NULL when invalid.",
        syntax_example = "phone_type(phone[, default_region])",
        sql_example = r#"```sql
> select phone_type('+33 6 12 34 56 78', 'US');
mobile
```"#,
        argument(name = "phone", description = "The number as typed: national (read in `default_region`) or international (`+`, or the region's own international prefix, and a country code)."),
        argument(name = "default_region", description = "ISO 3166 alpha-2 region for national numbers (`US`, `GB`, `FR`...); without it only international numbers parse.")
    )]
    pub struct PhoneType;
    name: "phone_type",
    signature: strings_between(1, 2),
    returns: DataType::Utf8,
    eval: |args, rows| super::eval("phone_type", args, rows, super::number_type),
}
