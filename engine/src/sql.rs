//! Quoting for SQL that Tessera writes: the one place identifiers and literals are quoted.
//! Names found by listing folders (a table `Raw-Events/` another tool wrote), columns with
//! capitals or spaces, and values with quotes all go through here.

/// A quoted identifier: `"name"`, with `"` doubled (case and characters kept as they are).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An identifier quoted only when it needs to be (not a plain lower-case name), for SQL
/// shown to people.
pub fn ident_if_needed(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_string() } else { ident(name) }
}

/// A string literal: `'text'`, with `'` doubled.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A table reference `"schema"."table"` (or `"table"`) from its parts.
pub fn table(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(schema) => format!("{}.{}", ident(schema), ident(table)),
        None => ident(table),
    }
}

/// A table reference from a `schema.table` name as Tessera writes them (the first dot
/// separates the schema), each part quoted.
pub fn table_name(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, t)) => table(Some(schema), t),
        None => ident(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_quoted() {
        assert_eq!(ident("Raw-Events"), "\"Raw-Events\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident_if_needed("email"), "email");
        assert_eq!(ident_if_needed("Email"), "\"Email\"");
        assert_eq!(literal("O'Neil"), "'O''Neil'");
        assert_eq!(table_name("raw.Raw-Events"), "\"raw\".\"Raw-Events\"");
        assert_eq!(table_name("events"), "\"events\"");
    }
}
