use datafusion::arrow::datatypes::DataType;
use datafusion_macros::user_doc;

use crate::util::{map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Address functions"),
        description = "A city name folded for comparison: transliterated to ASCII, lower case, \
        punctuation and hyphens as spaces, anything after a comma dropped (`Springfield, IL`), a \
        leading `City of` dropped, and leading abbreviations spelled out (`St.` → `saint`, `Ft` → \
        `fort`, `Mt` → `mount`, `N` → `north`). Rule-based: it does not verify the city exists. \
        NULL when nothing is left.",
        syntax_example = "city_normalize(city)",
        sql_example = r#"```sql
> select city_normalize('St. Louis, MO');
saint louis
```"#,
        argument(name = "city", description = "A city name.")
    )]
    pub struct CityNormalize;
    name: "city_normalize",
    signature: strings(1),
    returns: DataType::Utf8,
    eval: |args, rows| map_strings(args, rows, |v| super::region::city(v[0]?)),
}
