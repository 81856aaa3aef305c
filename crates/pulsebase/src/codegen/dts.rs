//! The declaration files: `api.d.ts` types each reference as `FunctionReference<kind,
//! visibility, Args, Returns>`, and `dataModel.d.ts` declares `TableNames`, `Id`, `Doc` and
//! `DataModel` from the schema.

use std::fmt::Write as _;

use functions::Visibility;
use schema::{Schema, Type};

use super::namespace::Namespace;
use super::syntax::{HEADER, comment_safe, indent, js_string, property};
use super::types::TypeContext;

/// The whole `api.d.ts`.
pub(super) fn api_dts(public: &Namespace, internal: &Namespace, tables: &TypeContext) -> String {
    let mut out = String::from(HEADER);
    out.push_str("import type { FunctionReference } from \"convex/server\";\n");
    out.push_str("import type { GenericId } from \"convex/values\";\n");
    out.push_str("import type { Doc, Id } from \"./dataModel.js\";\n\n");
    out.push_str(
        "/**\n * References to the app's public functions, for the convex client.\n *\n \
         * Usage: `useQuery(api.todos.getMyTodos)`.\n */\nexport declare const api: ",
    );
    ts_namespace(public, 0, tables, &mut out);
    out.push_str(";\n\n/**\n * References to the app's internal functions (not callable by clients).\n */\nexport declare const internal: ");
    ts_namespace(internal, 0, tables, &mut out);
    out.push_str(";\n");
    out
}

fn ts_namespace(ns: &Namespace, depth: usize, tables: &TypeContext, out: &mut String) {
    if let Some(reference) = &ns.function {
        let args = match &reference.args {
            None => "any".to_string(),
            Some(object) if object.fields.is_empty() => "Record<string, never>".to_string(),
            Some(object) => tables.object(object),
        };
        let returns = reference
            .returns
            .as_ref()
            .map_or_else(|| "any".to_string(), |t| tables.ts(t));
        let visibility = match reference.visibility {
            Visibility::Public => "public",
            Visibility::Internal => "internal",
        };
        let _ = write!(
            out,
            "FunctionReference<\"{}\", \"{visibility}\", {args}, {returns}>",
            reference.kind
        );
        if ns.children.is_empty() {
            return;
        }
        out.push_str(" & ");
    }
    if ns.children.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push_str("{\n");
    for (key, child) in &ns.children {
        if let Some(reference) = &child.function {
            indent(out, depth + 1);
            let _ = writeln!(
                out,
                "/** {} `{}` */",
                reference.kind,
                comment_safe(&reference.name)
            );
        }
        indent(out, depth + 1);
        let _ = write!(out, "{}: ", property(key));
        ts_namespace(child, depth + 1, tables, out);
        out.push_str(";\n");
    }
    indent(out, depth);
    out.push('}');
}

/// The whole `dataModel.d.ts`.
pub(super) fn data_model_dts(schema: &Schema, tables: &TypeContext) -> String {
    let mut out = String::from(HEADER);
    out.push_str("import type { GenericId } from \"convex/values\";\n\n");
    out.push_str(
        "/** The names of the tables declared in schema.toml. */\nexport type TableNames = ",
    );
    if schema.tables.is_empty() {
        out.push_str("never");
    } else {
        let names: Vec<String> = schema.tables.keys().map(|t| js_string(t)).collect();
        out.push_str(&names.join(" | "));
    }
    out.push_str(";\n\n");
    out.push_str(
        "/** The id of a document in `TableName`: a string that names its table. */\n\
         export type Id<TableName extends TableNames> = GenericId<TableName>;\n\n",
    );
    out.push_str(
        "/** A document of `TableName`, with its system fields `_id` and `_creationTime`. */\n\
         export type Doc<TableName extends TableNames> = DataModel[TableName][\"document\"];\n\n",
    );
    out.push_str("/** Every table: its document type, field paths and indexes. */\nexport type DataModel = {");
    if schema.tables.is_empty() {
        out.push_str("};\n");
        return out;
    }
    out.push('\n');
    for (name, table) in &schema.tables {
        let id = format!("Id<{}>", js_string(name));
        let _ = writeln!(out, "  {}: {{", property(name));
        let mut document = format!("{{ _id: {id}; _creationTime: number");
        let mut paths = vec!["\"_id\"".to_string(), "\"_creationTime\"".to_string()];
        match &table.document {
            Some(object) => {
                for (field, ty) in &object.fields {
                    document.push_str("; ");
                    document.push_str(&tables.field(field, ty));
                    field_paths(field, ty, &mut paths);
                }
            }
            None => document.push_str("; [field: string]: any"),
        }
        document.push_str(" }");
        let _ = writeln!(out, "    document: {document};");
        let _ = writeln!(out, "    fieldPaths: {};", paths.join(" | "));
        out.push_str("    indexes: {\n");
        out.push_str("      by_id: [\"_id\"];\n      by_creation_time: [\"_creationTime\"];\n");
        for (index_name, index) in &table.indexes {
            let mut fields: Vec<String> =
                index.fields.iter().map(|f| js_string(f.as_str())).collect();
            fields.push("\"_creationTime\"".to_string());
            let _ = writeln!(
                out,
                "      {}: [{}];",
                property(index_name),
                fields.join(", ")
            );
        }
        out.push_str("    };\n    searchIndexes: {};\n    vectorIndexes: {};\n  };\n");
    }
    out.push_str("};\n");
    out
}

/// The dotted paths of a field and of the fields of nested objects.
fn field_paths(prefix: &str, ty: &Type, paths: &mut Vec<String>) {
    paths.push(js_string(prefix));
    match ty {
        Type::Object(object) => {
            for (field, inner) in &object.fields {
                field_paths(&format!("{prefix}.{field}"), inner, paths);
            }
        }
        Type::Optional(inner) => {
            if let Type::Object(object) = inner.as_ref() {
                for (field, inner) in &object.fields {
                    field_paths(&format!("{prefix}.{field}"), inner, paths);
                }
            }
        }
        _ => {}
    }
}
