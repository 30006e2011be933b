//! TypeScript (or JavaScript) → the CommonJS JavaScript the Node runner evaluates.
//!
//! Pipeline, all in-process with the oxc crates (no Node, no npm):
//! 1. parse as a TypeScript *module* (so `import`/`export` and top-level `await` parse);
//! 2. semantic analysis with syntax checks (redeclarations and the like are syntax errors);
//! 3. the oxc TypeScript transform strips types, interfaces and type-only imports and lowers
//!    enums, namespaces and parameter properties (no ES-version lowering: Node 20 runs
//!    ES2023 natively);
//! 4. codegen with a source map back to the user's source;
//! 5. the generated ES module is parsed again and its top-level `import`/`export`
//!    declarations are rewritten, located through the oxc AST (never by regex), into
//!    `require(...)` and `module.exports.X = X` (oxc has no CommonJS transform).
//!
//! Output contract with `runners/node/runner.js`:
//! - The code is CommonJS for a function body: the runner wraps it in
//!   `async function (exports, require, module, __filename, __dirname)`, so top-level
//!   `await` works as is, and reads top-level `result`/`output`/`main`/`handler` bindings
//!   after the body has finished.
//! - Rewrites never add or remove line breaks inside the user's code; the export
//!   assignments and the interop helper go on one extra line at the end, followed by an
//!   inline source map (`//# sourceMappingURL=data:application/json;charset=utf-8;base64,…`, sources
//!   `["<code>"]`). The runner uses it to report stack positions in the original source.
//! - Live bindings are not kept: each export is assigned once, when the body has run.
//!   Default imports follow Babel interop (`m.__esModule ? m.default : m`).

use std::path::Path;

use oxc::allocator::Allocator;
use oxc::ast::ast::ImportExpression;
use oxc::ast::ast::{
    Declaration, ExportDefaultDeclarationKind, ImportDeclarationSpecifier, ModuleDeclaration,
    ModuleExportName,
};
use oxc::ast_visit::{Visit, walk};
use oxc::codegen::{Codegen, CodegenOptions};
use oxc::diagnostics::OxcDiagnostic;
use oxc::parser::Parser;
use oxc::semantic::SemanticBuilder;
use oxc::span::{GetSpan, SourceType};
use oxc::transformer::{TransformOptions, Transformer};
use paddock_shared::exec::{ExecStatus, ExecutionResult, error_type};

/// File name the runner gives user code; also the `sources` entry of the source map.
pub const CODE_FILE_NAME: &str = "<code>";

/// Name of the default-import interop helper appended to the output.
const INTEROP_FN: &str = "__paddock_default";
/// Name of the dynamic `import()` replacement appended to the output.
const IMPORT_FN: &str = "__paddock_import";

/// Why code could not be turned into runnable JavaScript (an `InvalidCode` error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The source does not parse (or fails the syntax checks of semantic analysis).
    #[error("syntax error at {line}:{column}: {message}")]
    Syntax {
        /// 1-based line in the user's source.
        line: u32,
        /// 1-based column, in characters.
        column: u32,
        message: String,
    },
    /// The TypeScript transform refused the code (e.g. an unsupported construct).
    #[error("cannot transform TypeScript at {line}:{column}: {message}")]
    Transform {
        line: u32,
        column: u32,
        message: String,
    },
    /// The generated JavaScript did not parse again (a transform bug, never user error).
    #[error("internal transform error: {message}")]
    Internal { message: String },
}

impl TransformError {
    /// The `failed` result with `error.type = InvalidCode` for an execution whose code
    /// did not transform (no slot is used).
    pub fn to_result(&self, execution_id: &str) -> ExecutionResult {
        ExecutionResult::failed(
            execution_id,
            ExecStatus::Failed,
            error_type::INVALID_CODE,
            format!("the TypeScript code does not compile: {self}; fix it and run it again"),
        )
    }
}

/// Finds dynamic `import(...)` calls (anywhere in the program).
#[derive(Default)]
struct DynamicImports {
    starts: Vec<usize>,
}

impl<'a> Visit<'a> for DynamicImports {
    fn visit_import_expression(&mut self, it: &ImportExpression<'a>) {
        self.starts.push(it.span.start as usize);
        walk::walk_import_expression(self, it);
    }
}

/// Turns TypeScript or JavaScript source into CommonJS JavaScript for the Node runner.
///
/// # Errors
/// [`TransformError::Syntax`] with the 1-based line and column of the first problem when
/// the source does not parse; [`TransformError::Transform`] when oxc's TypeScript
/// transform rejects it.
/// oxc is robust but young; a panic inside it on hostile input is reported as
/// [`TransformError::Internal`] instead of unwinding into the worker.
pub fn transform(source: &str) -> Result<String, TransformError> {
    std::panic::catch_unwind(|| transform_unguarded(source)).unwrap_or_else(|_| {
        Err(TransformError::Internal {
            message: "the TypeScript transform failed on this input".into(),
        })
    })
}

fn transform_unguarded(source: &str) -> Result<String, TransformError> {
    let allocator = Allocator::default();
    let source_type = SourceType::ts().with_module(true);
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if let Some(first) = parsed.diagnostics.errors().next() {
        return Err(syntax_error(source, first));
    }
    if parsed.panicked {
        return Err(TransformError::Syntax {
            line: 1,
            column: 1,
            message: "unparsable source".into(),
        });
    }
    let mut program = parsed.program;

    let semantic = SemanticBuilder::new()
        .with_check_syntax_error(true)
        .with_enum_eval(true)
        .build(&program);
    if let Some(first) = semantic.diagnostics.errors().next() {
        return Err(syntax_error(source, first));
    }
    let scoping = semantic.semantic.into_scoping();

    let options = TransformOptions::default();
    let transformed = Transformer::new(&allocator, Path::new("code.ts"), &options)
        .build_with_scoping(scoping, &mut program);
    if let Some(first) = transformed.diagnostics.errors().next() {
        let (line, column) = diagnostic_position(source, first);
        return Err(TransformError::Transform {
            line,
            column,
            message: first.message.to_string(),
        });
    }

    let generated = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some(CODE_FILE_NAME.into()),
            ..CodegenOptions::default()
        })
        .build(&program);
    let mut js = to_commonjs(&generated.code)?;
    if let Some(map) = generated.map {
        js.push_str("\n//# sourceMappingURL=");
        js.push_str(&map.to_data_url());
    }
    js.push('\n');
    Ok(js)
}

/// One replacement in the generated text.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// Rewrites the top-level module declarations of `code` (an ES module printed by oxc)
/// into CommonJS. Line breaks inside the code are preserved; the export assignments and
/// the interop helper are appended on one new line.
fn to_commonjs(code: &str) -> Result<String, TransformError> {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, code, SourceType::mjs()).parse();
    if let Some(first) = parsed.diagnostics.errors().next() {
        let (line, column) = diagnostic_position(code, first);
        return Err(TransformError::Internal {
            message: format!(
                "generated JavaScript does not parse at {line}:{column}: {}",
                first.message
            ),
        });
    }
    let mut edits: Vec<Edit> = Vec::new();
    let mut tail: Vec<String> = Vec::new();
    let mut uses_interop = false;
    let mut temp = 0usize;

    // `import(x)` needs a module loader the vm script does not have: it becomes a
    // Promise of `require(x)` shaped like a namespace object (`default` + named exports).
    let mut dynamic = DynamicImports::default();
    dynamic.visit_program(&parsed.program);
    for &start in &dynamic.starts {
        if code.get(start..start + 6) == Some("import") {
            edits.push(Edit {
                start,
                end: start + 6,
                text: IMPORT_FN.to_owned(),
            });
        }
    }

    for stmt in &parsed.program.body {
        let Some(decl) = stmt.as_module_declaration() else {
            continue;
        };
        let span = decl.span();
        let (start, end) = (span.start as usize, span.end as usize);
        match decl {
            ModuleDeclaration::ImportDeclaration(import) => {
                let source = js_string(&import.source.value);
                let text = match &import.specifiers {
                    None => format!("require({source});"),
                    Some(specs) if specs.is_empty() => format!("require({source});"),
                    Some(specs) => {
                        let mut default = None;
                        let mut namespace = None;
                        let mut named = Vec::new();
                        for spec in specs {
                            match spec {
                                ImportDeclarationSpecifier::ImportDefaultSpecifier(s) => {
                                    default = Some(s.local.name.to_string());
                                }
                                ImportDeclarationSpecifier::ImportNamespaceSpecifier(s) => {
                                    namespace = Some(s.local.name.to_string());
                                }
                                ImportDeclarationSpecifier::ImportSpecifier(s) => {
                                    named.push(destructure_entry(&s.imported, &s.local.name));
                                }
                            }
                        }
                        let parts = usize::from(default.is_some())
                            + usize::from(namespace.is_some())
                            + usize::from(!named.is_empty());
                        let module_expr = if parts > 1 {
                            let var = format!("__paddock_m{temp}");
                            temp += 1;
                            var
                        } else {
                            format!("require({source})")
                        };
                        let mut text = String::new();
                        if parts > 1 {
                            text.push_str(&format!("const {module_expr} = require({source}); "));
                        }
                        if let Some(ns) = namespace {
                            text.push_str(&format!("const {ns} = {module_expr}; "));
                        }
                        if let Some(d) = default {
                            uses_interop = true;
                            text.push_str(&format!("const {d} = {INTEROP_FN}({module_expr}); "));
                        }
                        if !named.is_empty() {
                            text.push_str(&format!(
                                "const {{ {} }} = {module_expr}; ",
                                named.join(", ")
                            ));
                        }
                        text.trim_end().to_owned()
                    }
                };
                edits.push(replace_keeping_lines(code, start, end, text));
            }
            ModuleDeclaration::ExportDeclaration(export) => {
                let decl_start = export.declaration.span().start as usize;
                edits.push(Edit {
                    start,
                    end: decl_start,
                    text: " ".repeat(decl_start - start),
                });
                for name in declared_names(&export.declaration) {
                    tail.push(format!("module.exports.{name} = {name};"));
                }
            }
            ModuleDeclaration::ExportDefaultDeclaration(export) => {
                let inner = export.declaration.span().start as usize;
                let named_decl = match &export.declaration {
                    ExportDefaultDeclarationKind::FunctionDeclaration(f) => {
                        f.id.as_ref().map(|id| id.name.to_string())
                    }
                    ExportDefaultDeclarationKind::ClassDeclaration(c) => {
                        c.id.as_ref().map(|id| id.name.to_string())
                    }
                    _ => None,
                };
                match named_decl {
                    Some(name) => {
                        edits.push(Edit {
                            start,
                            end: inner,
                            text: " ".repeat(inner - start),
                        });
                        tail.push(format!("module.exports.default = {name};"));
                    }
                    None => {
                        edits.push(Edit {
                            start,
                            end: inner,
                            text: "module.exports.default = ".into(),
                        });
                        if matches!(
                            export.declaration,
                            ExportDefaultDeclarationKind::FunctionDeclaration(_)
                                | ExportDefaultDeclarationKind::ClassDeclaration(_)
                        ) {
                            edits.push(Edit {
                                start: end,
                                end,
                                text: ";".into(),
                            });
                        }
                    }
                }
            }
            ModuleDeclaration::ExportNamedDeclaration(export) => {
                for spec in &export.specifiers {
                    tail.push(format!(
                        "module.exports[{}] = {};",
                        js_string(&spec.exported.name()),
                        spec.local.name()
                    ));
                }
                edits.push(replace_keeping_lines(code, start, end, String::new()));
            }
            ModuleDeclaration::ExportFromDeclaration(export) => {
                let var = format!("__paddock_m{temp}");
                temp += 1;
                let mut text = format!(
                    "{{ const {var} = require({}); ",
                    js_string(&export.source.value)
                );
                for spec in &export.specifiers {
                    let local = spec.local.name();
                    let value = if local == "default" {
                        uses_interop = true;
                        format!("{INTEROP_FN}({var})")
                    } else {
                        format!("{var}[{}]", js_string(&local))
                    };
                    text.push_str(&format!(
                        "module.exports[{}] = {value}; ",
                        js_string(&spec.exported.name())
                    ));
                }
                text.push('}');
                edits.push(replace_keeping_lines(code, start, end, text));
            }
            ModuleDeclaration::ExportAllDeclaration(export) => {
                let source = js_string(&export.source.value);
                let text = match &export.exported {
                    Some(name) => format!(
                        "module.exports[{}] = require({source});",
                        js_string(&name.name())
                    ),
                    None => format!(
                        "{{ const __paddock_all = require({source}); for (const k of Object.keys(__paddock_all)) \
                         {{ if (k !== \"default\") module.exports[k] = __paddock_all[k]; }} }}"
                    ),
                };
                edits.push(replace_keeping_lines(code, start, end, text));
            }
            ModuleDeclaration::TSExportAssignment(_)
            | ModuleDeclaration::TSNamespaceExportDeclaration(_) => {
                return Err(TransformError::Internal {
                    message: "TypeScript module syntax left after the transform".into(),
                });
            }
        }
    }

    let mut out = String::with_capacity(code.len() + 256);
    let mut pos = 0;
    edits.sort_by_key(|e| e.start);
    for edit in &edits {
        out.push_str(&code[pos..edit.start]);
        out.push_str(&edit.text);
        pos = edit.end;
    }
    out.push_str(&code[pos..]);
    let uses_import = !dynamic.starts.is_empty();
    if !tail.is_empty() || uses_interop || uses_import {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&tail.join(" "));
        if uses_interop {
            out.push_str(&format!(
                " function {INTEROP_FN}(m) {{ return m && m.__esModule ? m.default : m; }}"
            ));
        }
        if uses_import {
            out.push_str(&format!(
                " function {IMPORT_FN}(s) {{ return Promise.resolve().then(() => {{ const m = require(s); \
                 return m && m.__esModule ? m : Object.assign({{ default: m }}, m); }}); }}"
            ));
        }
    }
    Ok(out)
}

/// Replaces `code[start..end]` with `text` plus as many line breaks as the replaced text
/// had, so that the lines after it keep their numbers.
fn replace_keeping_lines(code: &str, start: usize, end: usize, mut text: String) -> Edit {
    let breaks = code[start..end].bytes().filter(|&b| b == b'\n').count();
    text.extend(std::iter::repeat_n('\n', breaks));
    Edit { start, end, text }
}

/// `a`, `b: c` or `"x-y": d` for a destructuring import.
fn destructure_entry(imported: &ModuleExportName<'_>, local: &str) -> String {
    let imported_name = imported.name();
    match imported {
        ModuleExportName::StringLiteral(_) => format!("{}: {local}", js_string(&imported_name)),
        _ if imported_name == local => local.to_owned(),
        _ => format!("{imported_name}: {local}"),
    }
}

/// Names bound by an exported declaration.
fn declared_names(decl: &Declaration<'_>) -> Vec<String> {
    match decl {
        Declaration::VariableDeclaration(var) => var
            .declarations
            .iter()
            .flat_map(|d| {
                d.id.get_binding_identifiers()
                    .into_iter()
                    .map(|id| id.name.to_string())
            })
            .collect(),
        Declaration::FunctionDeclaration(f) => f.id.iter().map(|id| id.name.to_string()).collect(),
        Declaration::ClassDeclaration(c) => c.id.iter().map(|id| id.name.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// A JavaScript string literal for `s` (JSON string syntax is valid JavaScript).
fn js_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

fn syntax_error(source: &str, diagnostic: &OxcDiagnostic) -> TransformError {
    let (line, column) = diagnostic_position(source, diagnostic);
    TransformError::Syntax {
        line,
        column,
        message: diagnostic.message.to_string(),
    }
}

/// 1-based line and column (in characters) of a diagnostic's first label; 1:1 without one.
fn diagnostic_position(source: &str, diagnostic: &OxcDiagnostic) -> (u32, u32) {
    let offset = diagnostic.labels.first().map_or(0, |l| l.offset() as usize);
    line_column(source, offset)
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_part(js: &str) -> &str {
        js.split("\n//# sourceMappingURL=").next().unwrap_or(js)
    }

    #[test]
    fn strips_types_interfaces_and_generics() {
        let src = "interface P { x: number }\ntype T = string;\nfunction id<T>(v: T): T { return v; }\nconst p: P = { x: id<number>(1) };\nexport const result = p.x as number;\n";
        let js = transform(src).expect("transform");
        let code = code_part(&js);
        assert!(!code.contains("interface"), "{code}");
        assert!(!code.contains(": number"), "{code}");
        assert!(code.contains("function id(v)"), "{code}");
        assert!(code.contains("module.exports.result = result;"), "{code}");
        assert!(!code.contains("export "), "{code}");
    }

    #[test]
    fn enums_become_objects() {
        let js = transform("enum Color { Red, Green = 5 }\nexport default Color.Green;\n")
            .expect("transform");
        let code = code_part(&js);
        assert!(code.contains("Color"), "{code}");
        assert!(
            code.contains("module.exports.default = Color.Green"),
            "{code}"
        );
        assert!(!code.contains("enum "), "{code}");
    }

    #[test]
    fn default_export_function_keeps_its_name_and_line() {
        let src =
            "// header\nexport default async function main(input: any) {\n  return input;\n}\n";
        let js = transform(src).expect("transform");
        let code = code_part(&js);
        assert!(code.contains("async function main(input)"), "{code}");
        assert!(code.contains("module.exports.default = main;"), "{code}");
        assert!(!code.contains("export default"), "{code}");
    }

    #[test]
    fn anonymous_default_export_is_assigned() {
        let js =
            transform("export default function (x: number) { return x * 2 }\n").expect("transform");
        assert!(
            code_part(&js).contains("module.exports.default = function(x)"),
            "{js}"
        );
    }

    #[test]
    fn imports_become_requires() {
        let src = "import fs from \"fs\";\nimport * as path from 'path';\nimport { a, b as c } from \"./functions\";\nimport d, { e } from \"./functions\";\nimport \"./side\";\nconst r = require(\"os\");\nexport const out = [fs, path, a, c, d, e, r];\n";
        let js = transform(src).expect("transform");
        let code = code_part(&js);
        assert!(
            code.contains("const fs = __paddock_default(require(\"fs\"));"),
            "{code}"
        );
        assert!(code.contains("const path = require(\"path\");"), "{code}");
        assert!(
            code.contains("const { a, b: c } = require(\"./functions\");"),
            "{code}"
        );
        assert!(
            code.contains("const __paddock_m0 = require(\"./functions\");"),
            "{code}"
        );
        assert!(
            code.contains("const d = __paddock_default(__paddock_m0);"),
            "{code}"
        );
        assert!(code.contains("require(\"./side\");"), "{code}");
        assert!(code.contains("function __paddock_default(m)"), "{code}");
        assert!(!code.contains("import "), "{code}");
    }

    #[test]
    fn type_only_imports_disappear() {
        let js = transform(
            "import type { X } from \"./functions\";\nconst v: X = 1 as any;\nexport { v };\n",
        )
        .expect("transform");
        let code = code_part(&js);
        assert!(!code.contains("require"), "{code}");
        assert!(code.contains("module.exports[\"v\"] = v;"), "{code}");
    }

    #[test]
    fn named_export_list_and_reexports() {
        let src = "const main = (i: any) => i;\nexport { main as handler, main };\nexport { x as y } from \"./functions\";\nexport * from \"./other\";\nexport * as ns from \"./third\";\n";
        let js = transform(src).expect("transform");
        let code = code_part(&js);
        assert!(
            code.contains("module.exports[\"handler\"] = main;"),
            "{code}"
        );
        assert!(
            code.contains("module.exports[\"y\"] = __paddock_m0[\"x\"];"),
            "{code}"
        );
        assert!(
            code.contains("module.exports[\"ns\"] = require(\"./third\");"),
            "{code}"
        );
        assert!(code.contains("Object.keys(__paddock_all)"), "{code}");
    }

    #[test]
    fn destructured_exports_export_every_name() {
        let js = transform("export const { a, b: [c] } = { a: 1, b: [2] };\n").expect("transform");
        let code = code_part(&js);
        assert!(code.contains("module.exports.a = a;"), "{code}");
        assert!(code.contains("module.exports.c = c;"), "{code}");
    }

    #[test]
    fn dynamic_import_becomes_a_promised_require() {
        let js =
            transform("const os = await import(\"os\");\nexport const result = os.platform();\n")
                .expect("transform");
        let code = code_part(&js);
        assert!(code.contains("await __paddock_import(\"os\")"), "{code}");
        assert!(code.contains("function __paddock_import(s)"), "{code}");
    }

    #[test]
    fn transform_error_is_an_invalid_code_result() {
        let err = transform("let = ;").expect_err("syntax error");
        let result = err.to_result("e1");
        assert_eq!(result.status, ExecStatus::Failed);
        let error = result.error.expect("error");
        assert_eq!(error.error_type, "InvalidCode");
        assert!(
            error.message.contains("syntax error at 1:"),
            "{}",
            error.message
        );
    }

    #[test]
    fn top_level_await_is_kept_for_the_async_wrapper() {
        let js =
            transform("const v = await Promise.resolve(3);\nlet result = v;\n").expect("transform");
        assert!(code_part(&js).contains("await Promise.resolve(3)"), "{js}");
    }

    #[test]
    fn replacements_keep_line_breaks() {
        let code = "import {\n  a,\n  b\n} from \"x\";\nnext();";
        let edit = replace_keeping_lines(code, 0, 28, "const { a, b } = require(\"x\");".into());
        assert_eq!(edit.text.matches('\n').count(), 3);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = transform("const a = 1;\nconst b = ;\n").expect_err("must fail");
        match err {
            TransformError::Syntax {
                line,
                column,
                ref message,
            } => {
                assert_eq!(line, 2, "{err}");
                assert_eq!(column, 11, "{err}");
                assert!(!message.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            transform("let x = 1;\nlet x = 2;\n").is_err(),
            "redeclaration is a syntax error"
        );
    }

    #[test]
    fn source_map_is_inline() {
        let js = transform("const x: number = 1;\n").expect("transform");
        assert!(
            js.contains("\n//# sourceMappingURL=data:application/json;charset=utf-8;base64,"),
            "{js}"
        );
    }

    #[test]
    fn import_equals_and_export_assignment() {
        let js = transform(
            "import fs = require(\"fs\");\nconst f = (x: number) => typeof fs + x;\nexport = f;\n",
        )
        .expect("transform");
        let code = code_part(&js);
        assert!(code.contains("const fs = require(\"fs\");"), "{code}");
        assert!(code.contains("module.exports = f;"), "{code}");
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncé d", 7), (2, 4));
        assert_eq!(line_column("", 5), (1, 1));
    }
}
