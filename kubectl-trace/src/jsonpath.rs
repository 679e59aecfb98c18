//! kubectl's JSONPath templates for `get -o jsonpath=TEMPLATE`, the subset kubectl users
//! write: text around `{...}` actions; paths `{.a.b}`, `{$.a}`, `{@}`, `{.items[*].metadata.name}`,
//! `[N]` (negative from the end), `[a:b]`, `['key']`, `.*`, `..name` (recursive descent),
//! filters `[?(@.a.b == "x")]` (`==`, `!=`, or bare existence); `{range PATH}...{end}`; and
//! string literals `{"\n"}`. Several results of one path print separated by spaces,
//! strings raw, objects and lists as compact JSON; a missing key prints nothing, as
//! `kubectl get` does by default (`--allow-missing-template-keys`). Pure: parse once,
//! render against `serde_json::Value`s.

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Path),
    Range(Path, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
struct Path {
    /// From the root (`$`) rather than the current item.
    root: bool,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    /// `..name`: every `name` field at any depth.
    Descend(String),
    /// `.*` or `[*]`.
    All,
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: Path,
    /// `None`: the path exists (and is not null or false).
    cmp: Option<(bool, Value)>,
}

impl Template {
    /// Parse a template; the error names what is wrong and where (1-based column).
    pub fn parse(text: &str) -> Result<Template, String> {
        let chars: Vec<char> = text.chars().collect();
        // Stack of open ranges: (path, nodes so far); the bottom is the template.
        let mut stack: Vec<(Option<Path>, Vec<Node>)> = vec![(None, Vec::new())];
        let mut i = 0;
        let mut literal = String::new();
        while i < chars.len() {
            let c = chars[i];
            if c != '{' {
                literal.push(c);
                i += 1;
                continue;
            }
            if !literal.is_empty() {
                stack
                    .last_mut()
                    .expect("stack has a bottom")
                    .1
                    .push(Node::Text(std::mem::take(&mut literal)));
            }
            let start = i;
            let end = action_end(&chars, i + 1)
                .ok_or_else(|| format!("unclosed action at column {}", start + 1))?;
            let action: String = chars[i + 1..end].iter().collect();
            let action = action.trim();
            let col = start + 2;
            if action == "end" {
                if stack.len() == 1 {
                    return Err(format!("{{end}} without {{range}} at column {}", start + 1));
                }
                let (path, nodes) = stack.pop().expect("checked above");
                stack
                    .last_mut()
                    .expect("stack has a bottom")
                    .1
                    .push(Node::Range(path.expect("ranges have a path"), nodes));
            } else if let Some(rest) = action.strip_prefix("range ") {
                let path = parse_path(rest.trim(), col + 6)?;
                stack.push((Some(path), Vec::new()));
            } else if action.starts_with('"') {
                let s = parse_string(action, col)?;
                stack
                    .last_mut()
                    .expect("stack has a bottom")
                    .1
                    .push(Node::Text(s));
            } else if action.is_empty() {
                return Err(format!("empty action at column {}", start + 1));
            } else {
                let path = parse_path(action, col)?;
                stack
                    .last_mut()
                    .expect("stack has a bottom")
                    .1
                    .push(Node::Path(path));
            }
            i = end + 1;
        }
        if !literal.is_empty() {
            stack
                .last_mut()
                .expect("stack has a bottom")
                .1
                .push(Node::Text(literal));
        }
        if stack.len() > 1 {
            return Err("{range} without {end}".to_string());
        }
        Ok(Template {
            nodes: stack.pop().expect("stack has a bottom").1,
        })
    }

    /// Render the template against `data`.
    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, data, data, &mut out);
        out
    }
}

/// Index of the `}` closing the action that starts at `from` (quotes respected).
fn action_end(chars: &[char], from: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut i = from;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                if c == '\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '}' => return Some(i),
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// A double-quoted literal with `\n`, `\t`, `\r`, `\\` and `\"` escapes.
fn parse_string(s: &str, col: usize) -> Result<String, String> {
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|_| s.len() >= 2)
        .ok_or_else(|| format!("unterminated string at column {col}"))?;
    let mut out = String::new();
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(c @ ('\\' | '"' | '\'')) => out.push(c),
            Some(c) => return Err(format!("unknown escape \\{c} in string at column {col}")),
            None => return Err(format!("unterminated string at column {col}")),
        }
    }
    Ok(out)
}

/// A path such as `.items[*].metadata.name`, `$.a`, `@`, `..name`.
fn parse_path(s: &str, col: usize) -> Result<Path, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut root = false;
    match chars.first() {
        Some('$') => {
            root = true;
            i = 1;
        }
        Some('@') => i = 1,
        _ => {}
    }
    let mut steps = Vec::new();
    let err = |at: usize, what: &str| format!("{what} at column {}", col + at);
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let descend = chars.get(i + 1) == Some(&'.');
                i += if descend { 2 } else { 1 };
                if chars.get(i) == Some(&'*') {
                    i += 1;
                    steps.push(Step::All);
                    continue;
                }
                let (name, next) = field_name(&chars, i);
                if name.is_empty() {
                    // `{.}`: the current item itself.
                    if i >= chars.len() && !descend && steps.is_empty() {
                        break;
                    }
                    return Err(err(i, "expected a field name"));
                }
                steps.push(if descend {
                    Step::Descend(name)
                } else {
                    Step::Field(name)
                });
                i = next;
            }
            '[' => {
                let close = bracket_end(&chars, i + 1).ok_or_else(|| err(i, "unclosed ["))?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(parse_bracket(inner.trim(), col + i + 1)?);
                i = close + 1;
            }
            c if c.is_whitespace() => i += 1,
            c => return Err(err(i, &format!("unexpected {c:?} in path"))),
        }
    }
    Ok(Path { root, steps })
}

/// A field name up to the next `.` or `[` (`\.` keeps a dot in the name).
fn field_name(chars: &[char], mut i: usize) -> (String, usize) {
    let mut name = String::new();
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                name.push(chars[i + 1]);
                i += 2;
            }
            '.' | '[' => break,
            c if c.is_whitespace() => break,
            c => {
                name.push(c);
                i += 1;
            }
        }
    }
    (name, i)
}

fn bracket_end(chars: &[char], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, &c) in chars.iter().enumerate().skip(from) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ']' if depth == 0 => return Some(i),
                ']' => depth -= 1,
                _ => {}
            },
        }
    }
    None
}

fn parse_bracket(inner: &str, col: usize) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Some(q) = inner
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
    {
        return Ok(Step::Field(q.to_string()));
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|r| r.strip_suffix(')')) {
        return parse_filter(f.trim(), col + 2);
    }
    let int = |s: &str| -> Result<Option<i64>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<i64>()
            .map(Some)
            .map_err(|_| format!("invalid index {s:?} at column {col}"))
    };
    if let Some((a, b)) = inner.split_once(':') {
        return Ok(Step::Slice(int(a)?, int(b)?));
    }
    match int(inner)? {
        Some(n) => Ok(Step::Index(n)),
        None => Err(format!("empty [] at column {col}")),
    }
}

fn parse_filter(f: &str, col: usize) -> Result<Step, String> {
    for (op, eq) in [("==", true), ("!=", false)] {
        if let Some((l, r)) = f.split_once(op) {
            let path = parse_path(l.trim(), col)?;
            let r = r.trim();
            let value = if r.starts_with('"') {
                Value::String(parse_string(r, col)?)
            } else if let Some(s) = r.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                Value::String(s.to_string())
            } else {
                serde_json::from_str(r)
                    .map_err(|_| format!("invalid value {r:?} in filter at column {col}"))?
            };
            return Ok(Step::Filter(Filter {
                path,
                cmp: Some((eq, value)),
            }));
        }
    }
    Ok(Step::Filter(Filter {
        path: parse_path(f, col)?,
        cmp: None,
    }))
}

fn render_nodes(nodes: &[Node], root: &Value, cur: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let results = eval(p, root, cur);
                let texts: Vec<String> = results.iter().map(|v| text(v)).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(p, body) => {
                for v in eval(p, root, cur) {
                    match v {
                        Value::Array(items) => {
                            for item in items {
                                render_nodes(body, root, item, out);
                            }
                        }
                        other => render_nodes(body, root, other, out),
                    }
                }
            }
        }
    }
}

/// How one result prints: strings raw, null as nothing, the rest as compact JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn eval<'a>(p: &Path, root: &'a Value, cur: &'a Value) -> Vec<&'a Value> {
    let mut vals: Vec<&Value> = vec![if p.root { root } else { cur }];
    for step in &p.steps {
        let mut next = Vec::new();
        for v in vals {
            apply(step, root, v, &mut next);
        }
        vals = next;
    }
    vals
}

fn apply<'a>(step: &Step, root: &'a Value, v: &'a Value, next: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => {
            if let Some(x) = v.get(name.as_str()) {
                next.push(x);
            }
        }
        Step::Descend(name) => descend(v, name, next),
        Step::All => match v {
            Value::Array(a) => next.extend(a.iter()),
            Value::Object(o) => next.extend(o.values()),
            _ => {}
        },
        Step::Index(n) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let i = if *n < 0 { len + n } else { *n };
                if (0..len).contains(&i) {
                    next.push(&a[i as usize]);
                }
            }
        }
        Step::Slice(from, to) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let clamp = |x: i64| (if x < 0 { len + x } else { x }).clamp(0, len) as usize;
                let (s, e) = (clamp(from.unwrap_or(0)), clamp(to.unwrap_or(len)));
                if s < e {
                    next.extend(a[s..e].iter());
                }
            }
        }
        Step::Filter(f) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for item in items {
                let found = eval(&f.path, root, item);
                let keep = match &f.cmp {
                    None => found
                        .iter()
                        .any(|x| !matches!(x, Value::Null | Value::Bool(false))),
                    Some((eq, want)) => found.iter().any(|x| (*x == want) == *eq),
                };
                if keep {
                    next.push(item);
                }
            }
        }
    }
}

fn descend<'a>(v: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(o) => {
            if let Some(x) = o.get(name) {
                out.push(x);
            }
            for x in o.values() {
                descend(x, name, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                descend(x, name, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}},
             "status": {"active": 1, "conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "b"}, "status": {"succeeded": 1}}
        ]})
    }

    fn render(t: &str) -> String {
        Template::parse(t).unwrap().render(&data())
    }

    #[test]
    fn paths_and_wildcards() {
        assert_eq!(render("{.kind}"), "List");
        assert_eq!(render("{.items[*].metadata.name}"), "a b");
        assert_eq!(render("{.items[0].metadata.name}"), "a");
        assert_eq!(render("{.items[-1].metadata.name}"), "b");
        assert_eq!(render("{.items[0:1].metadata.name}"), "a");
        assert_eq!(render("{$.items[1]['metadata']['name']}"), "b");
        assert_eq!(render("{.items[0].status.active}"), "1");
        assert_eq!(render("{.items[1].status}"), r#"{"succeeded":1}"#);
        assert_eq!(
            render(r"{.items[0].metadata.labels.app\.kubernetes\.io/name}"),
            "x"
        );
        assert_eq!(render("{..name}"), "a b");
        assert_eq!(render("{.items[*].status.*}").split(' ').count(), 3);
    }

    #[test]
    fn text_ranges_and_literals() {
        assert_eq!(
            render(r#"{range .items[*]}{.metadata.name}{"\t"}{.status.active}{"\n"}{end}"#),
            "a\t1\nb\t\n"
        );
        assert_eq!(render("names: {.items[*].metadata.name}!"), "names: a b!");
        assert_eq!(render("{range .items}[{.metadata.name}]{end}"), "[a][b]");
        // Inside a range, `$` is still the whole input.
        assert_eq!(render("{range .items[*]}{$.kind} {end}"), "List List ");
    }

    #[test]
    fn filters() {
        assert_eq!(
            render(r#"{.items[?(@.metadata.name=="b")].status.succeeded}"#),
            "1"
        );
        assert_eq!(
            render(r#"{.items[?(@.metadata.name != 'b')].metadata.name}"#),
            "a"
        );
        assert_eq!(render("{.items[?(@.status.active)].metadata.name}"), "a");
        assert_eq!(
            render(r#"{.items[0].status.conditions[?(@.type=="Ready")].status}"#),
            "True"
        );
    }

    #[test]
    fn missing_keys_print_nothing() {
        assert_eq!(render("{.nope}"), "");
        assert_eq!(render("<{.items[5].metadata.name}>"), "<>");
    }

    #[test]
    fn errors_say_what_and_where() {
        for (t, want) in [
            ("{.a", "unclosed action at column 1"),
            ("x{range .items[*]}{.a}", "{range} without {end}"),
            ("{end}", "{end} without {range} at column 1"),
            ("{.items[abc]}", "invalid index \"abc\" at column 9"),
            ("{.items[0}", "unclosed [ at column 8"),
            ("{}", "empty action at column 1"),
            (r#"{"\q"}"#, "unknown escape \\q in string at column 2"),
            ("{.a b}", "unexpected 'b' in path at column 5"),
        ] {
            assert_eq!(Template::parse(t).unwrap_err(), want, "{t}");
        }
    }
}
