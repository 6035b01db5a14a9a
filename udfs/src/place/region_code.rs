use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings_between};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Address functions"),
        description = "The postal code of a first-level region — US states, DC and territories \
        (USPS), Canadian provinces and territories (Canada Post, English or French names), \
        Australian states — from its name or code in any case or accents (`California`, `ca`, \
        `State of New York`, `Québec`). NULL for an unknown region or a country without a table.",
        syntax_example = "region_code(region [, country])",
        sql_example = r#"```sql
> select region_code('california'), region_code('Québec', 'Canada');
CA QC
```"#,
        argument(name = "region", description = "A state or province name or code."),
        argument(name = "country", description = "A country name or code; `US` when omitted.")
    )]
    pub struct RegionCode;
    name: "region_code",
    signature: strings_between(1, 2),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| {
        super::region::region_code(v[0]?, if v.len() > 1 { v[1]? } else { "US" })
    }),
}
