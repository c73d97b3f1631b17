//! A small RFC 6902 applier (add, remove, replace), used to check that every
//! patch this crate writes really turns the first document into the second.

use crate::parse::{Document, Node};
use crate::report::{Op, PatchOp, json_string};

/// A patch operation could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("patch operation {index} ({path}): {reason}")]
pub struct PatchError {
    /// Position of the operation in the patch.
    pub index: usize,
    /// Its JSON Pointer.
    pub path: String,
    /// Why it failed.
    pub reason: String,
}

/// An owned, mutable JSON value; numbers and strings keep their source text.
#[derive(Clone, Debug)]
enum Tree {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Tree>),
    Obj(Vec<(String, Tree)>),
}

fn build(doc: &Document, id: u32) -> Tree {
    match doc.node(id) {
        Node::Null => Tree::Null,
        Node::Bool(b) => Tree::Bool(b),
        Node::Num(s) => Tree::Num(doc.raw(s).to_owned()),
        Node::Str(s) => Tree::Str(doc.text(s).into_owned()),
        Node::Arr(f, n) => Tree::Arr((f..f + n).map(|i| build(doc, i)).collect()),
        Node::Obj(f, n) => Tree::Obj(
            (f..f + n)
                .map(|i| (doc.key(i).into_owned(), build(doc, i)))
                .collect(),
        ),
    }
}

fn write(t: &Tree, out: &mut String) {
    match t {
        Tree::Null => out.push_str("null"),
        Tree::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Tree::Num(s) => out.push_str(s),
        Tree::Str(s) => json_string(out, s),
        Tree::Arr(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, out);
            }
            out.push(']');
        }
        Tree::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, k);
                out.push(':');
                write(v, out);
            }
            out.push('}');
        }
    }
}

fn parse_pointer(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err("a JSON Pointer starts with '/'".into());
    };
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn apply_one(root: &mut Tree, op: &PatchOp) -> Result<(), String> {
    let mut steps = parse_pointer(&op.path)?;
    let value = || -> Result<Tree, String> {
        let text = op.value.as_deref().ok_or("missing value")?;
        let d = Document::parse(text.to_owned()).map_err(|e| e.to_string())?;
        Ok(build(&d, d.root))
    };
    let Some(last) = steps.pop() else {
        return match op.op {
            Op::Add | Op::Replace => {
                *root = value()?;
                Ok(())
            }
            Op::Remove => Err("cannot remove the root".into()),
        };
    };
    let mut cur = root;
    for s in &steps {
        cur = match cur {
            Tree::Obj(m) => m
                .iter_mut()
                .find(|(k, _)| k == s)
                .map(|(_, v)| v)
                .ok_or_else(|| format!("no member {s:?}"))?,
            Tree::Arr(a) => {
                let i: usize = s.parse().map_err(|_| format!("bad index {s:?}"))?;
                a.get_mut(i)
                    .ok_or_else(|| format!("index {i} out of range"))?
            }
            _ => return Err(format!("{s:?} steps into a scalar")),
        };
    }
    match cur {
        Tree::Obj(m) => {
            let pos = m.iter().position(|(k, _)| *k == last);
            match (op.op, pos) {
                (Op::Add, Some(p)) | (Op::Replace, Some(p)) => m[p].1 = value()?,
                (Op::Add, None) => m.push((last, value()?)),
                (Op::Remove, Some(p)) => {
                    m.remove(p);
                }
                (_, None) => return Err(format!("no member {last:?}")),
            }
        }
        Tree::Arr(a) => {
            let i = if last == "-" && op.op == Op::Add {
                a.len()
            } else {
                last.parse().map_err(|_| format!("bad index {last:?}"))?
            };
            match op.op {
                Op::Add if i <= a.len() => a.insert(i, value()?),
                Op::Remove if i < a.len() => {
                    a.remove(i);
                }
                Op::Replace if i < a.len() => a[i] = value()?,
                _ => return Err(format!("index {i} out of range")),
            }
        }
        _ => return Err("the parent is not a container".into()),
    }
    Ok(())
}

/// Applies `patch` to `doc` and returns the result as compact JSON text.
pub fn apply(doc: &Document, patch: &[PatchOp]) -> Result<String, PatchError> {
    let mut root = build(doc, doc.root);
    for (index, op) in patch.iter().enumerate() {
        apply_one(&mut root, op).map_err(|reason| PatchError {
            index,
            path: op.path.clone(),
            reason,
        })?;
    }
    let mut out = String::new();
    write(&root, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: Op, path: &str, value: Option<&str>) -> PatchOp {
        PatchOp {
            op,
            path: path.into(),
            value: value.map(str::to_owned),
        }
    }

    #[test]
    fn applies_the_three_operations() {
        let d: Document = r#"{"a":[1,2,3],"b":{"c~/":1}}"#.parse().expect("valid");
        let p = [
            op(Op::Remove, "/a/0", None),
            op(Op::Add, "/a/-", Some("4")),
            op(Op::Add, "/a/0", Some("0")),
            op(Op::Replace, "/b/c~0~1", Some("\"x\"")),
            op(Op::Add, "/d", Some("null")),
        ];
        assert_eq!(
            apply(&d, &p).expect("applies"),
            r#"{"a":[0,2,3,4],"b":{"c~/":"x"},"d":null}"#
        );
    }

    #[test]
    fn reports_bad_operations() {
        let d: Document = "[1]".parse().expect("valid");
        let e = apply(&d, &[op(Op::Remove, "/5", None)]).expect_err("fails");
        assert_eq!(e.index, 0);
        assert!(apply(&d, &[op(Op::Remove, "", None)]).is_err());
        assert_eq!(
            apply(&d, &[op(Op::Replace, "", Some("{}"))]).expect("ok"),
            "{}"
        );
    }
}
