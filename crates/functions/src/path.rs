//! [`FunctionPath`]: `"module/path:name"`, canonicalised the way the Convex client
//! canonicalises query paths, applied to every incoming path (mutations and HTTP calls arrive
//! uncanonicalised): a bare module means `:default`, and a `.js` suffix on the module is
//! dropped.

use std::fmt;

/// A canonical function path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionPath {
    module: String,
    name: String,
}

impl FunctionPath {
    pub fn new(module: impl Into<String>, name: impl Into<String>) -> FunctionPath {
        FunctionPath {
            module: module.into(),
            name: name.into(),
        }
    }

    /// Canonicalises a path as sent by a client: `"todos"` → `todos:default`,
    /// `"messages.js:list"` → `messages:list`, `"dir/file:fn"` unchanged.
    pub fn parse(text: &str) -> FunctionPath {
        let (module, name) = match text.rsplit_once(':') {
            Some((module, name)) if !name.is_empty() => (module, name),
            Some((module, _)) => (module, "default"),
            None => (text, "default"),
        };
        let module = module.trim_start_matches('/');
        let module = module.strip_suffix(".js").unwrap_or(module);
        FunctionPath::new(module, name)
    }

    pub fn module(&self) -> &str {
        &self.module
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for FunctionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::FunctionPath;

    #[test]
    fn canonicalises_like_the_client() {
        assert_eq!(
            FunctionPath::parse("todos:getMyTodos").to_string(),
            "todos:getMyTodos"
        );
        assert_eq!(FunctionPath::parse("bump").to_string(), "bump:default");
        assert_eq!(
            FunctionPath::parse("messages.js:list").to_string(),
            "messages:list"
        );
        assert_eq!(
            FunctionPath::parse("dir/file:fn").to_string(),
            "dir/file:fn"
        );
    }
}
