use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Address functions"),
        description = "A street address folded for comparison: transliterated to ASCII, lower \
        case, punctuation removed, `#` read as a unit, and street types, unit designators and \
        directions abbreviated as USPS Publication 28 does (`Street` → `st`, `Apartment` → `apt`, \
        `North` → `n`). Rule-based: it does not parse or verify addresses. NULL when nothing is \
        left.",
        syntax_example = "street_normalize(address)",
        sql_example = r#"```sql
> select street_normalize('123 North Main Street, Apartment 4');
123 n main st apt 4
```"#,
        argument(name = "address", description = "A street line.")
    )]
    pub struct StreetNormalize;
    name: "street_normalize",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::street(v[0]?)),
}
