use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Address functions"),
        description = "A postal code in its country's standard form, or NULL when it is not valid \
        there: US ZIP5 (ZIP+4 cut to 5 digits), GB `SW1A 1AA`, CA `K1A 0B1`, FR/DE/ES/IT 5 digits \
        (a 4-digit code that lost its leading zero in a spreadsheet is padded), NL `1234 AB`; \
        other countries upper case with single spaces. The country may be written any way \
        `country_code` reads; an unknown country gives NULL.",
        syntax_example = "postal_code_normalize(code, country)",
        sql_example = r#"```sql
> select postal_code_normalize('sw1a1aa', 'UK'), postal_code_normalize('02139-4307', 'USA');
SW1A 1AA 02139
```"#,
        argument(name = "code", description = "The postal code as written."),
        argument(name = "country", description = "The country (code or name).")
    )]
    pub struct PostalCodeNormalize;
    name: "postal_code_normalize",
    signature: strings(2),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::postal_code(v[0]?, v[1]?)),
}
