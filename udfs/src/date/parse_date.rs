use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion_macros::user_doc;

use crate::util::{Days, map_strings, strings_between};

fn order(text: &str) -> Option<super::Order> {
    match text.trim().to_ascii_lowercase().as_str() {
        "mdy" | "us" => Some(super::Order::MonthDay),
        "dmy" | "eu" => Some(super::Order::DayMonth),
        _ => None,
    }
}

crate::string_function! {
    #[user_doc(
        doc_section(label = "Date functions"),
        description = "Reads a date typed by a person or exported by a system: ISO \
        (`1994-07-05`, or the date of an ISO timestamp), compact (`19940705`), dotted \
        (`05.07.1994`, day first), slashed or dashed with the year last (`07/05/1994`: month \
        first unless `order` is `dmy` or the first number is above 12), or with an English month \
        name (`5 July 1994`, `July 5, 1994`, `05-Jul-1994`). NULL for two-digit years, \
        impossible dates (`1994-02-30`) and anything else.",
        syntax_example = "parse_date(text[, order])",
        sql_example = r#"```sql
> select parse_date('05.07.1994'), parse_date('07/05/1994'), parse_date('07/05/1994', 'dmy');
1994-07-05 1994-07-05 1994-05-07
```"#,
        argument(name = "text", description = "The date as written."),
        argument(name = "order", description = "`mdy` (default, US) or `dmy`: how to read `01/02/1990`.")
    )]
    pub struct ParseDate;
    name: "parse_date",
    signature: strings_between(1, 2),
    returns: DataType::Date32,
    eval: |args, rows| {
        if let Some(o) = crate::util::constant_str(args, 1)
            && order(o).is_none()
        {
            return exec_err!("parse_date: unknown order `{o}` (expected mdy or dmy)");
        }
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
        map_strings(args, rows, |v| {
            let o = if v.len() > 1 { order(v[1]?)? } else { super::Order::MonthDay };
            super::parse(v[0]?, o).map(|d| Days((d - epoch).num_days() as i32))
        })
    },
}
