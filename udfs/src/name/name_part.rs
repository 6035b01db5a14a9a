use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion_macros::user_doc;

use crate::util::{constant_str, map_strings, strings};

crate::string_function! {
    #[user_doc(
        doc_section(label = "Name functions"),
        description = "One part of a full name, folded as `name_normalize` folds: `first`, \
        `middle`, `last`, `title` or `suffix` (`given` and `family` are synonyms). Reads `First \
        Middle Last` and `Last, First Middle`; particles stay with the family name (`van`, `de \
        la`, `bin`...); a single word is a first name. Rule-based: it cannot tell an East Asian \
        family-name-first order without a comma. NULL when the part is absent.",
        syntax_example = "name_part(full_name, part)",
        sql_example = r#"```sql
> select name_part('Dr. Ludwig van Beethoven', 'last'), name_part('Smith, John Paul', 'first');
van beethoven john
```"#,
        argument(name = "full_name", description = "A full name."),
        argument(name = "part", description = "`first`, `middle`, `last`, `title` or `suffix`.")
    )]
    pub struct NamePart;
    name: "name_part",
    signature: strings(2),
    returns: DataType::Utf8,
    eval: |args, rows| {
        if let Some(which) = constant_str(args, 1)
            && !super::PARTS.contains(&which.trim().to_ascii_lowercase().as_str())
        {
            return exec_err!(
                "name_part: unknown part `{which}` (expected one of {})",
                super::PARTS.join(", ")
            );
        }
        map_strings(args, rows, |v| super::part(v[0]?, v[1]?))
    },
}
