use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Address functions"),
        description = "The ISO 3166-1 alpha-2 code of a country written as an alpha-2 or alpha-3 \
        code, its English name or a common alias, in any case and with accents, dots or spaces \
        (`U.S.A.`, `United Kingdom`, `England`, `République française`, `Deutschland`). NULL when \
        the country is not recognised.",
        syntax_example = "country_code(country)",
        sql_example = r#"```sql
> select country_code('U.S.A.'), country_code('République française');
US FR
```"#,
        argument(name = "country", description = "A country as written in a source.")
    )]
    pub struct CountryCode;
    name: "country_code",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::country_code(v[0]?)),
}
