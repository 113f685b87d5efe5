//! Remote path templates: `{host}` and `{tag:NAME}` placeholders, expanded per host before any
//! transfer starts, so a missing tag stops the run before a host is contacted.

use std::collections::BTreeMap;

/// A remote path template that cannot be expanded for a host.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum TemplateError {
    /// `{tag:NAME}` names a tag the host does not have.
    #[error("remote path `{template}`: host {host} has no tag `{tag}`")]
    #[diagnostic(
        code(sortie::transfer::missing_tag),
        help("add `tags = {{ {tag} = \"...\" }}` to the host or its group in the inventory, or drop the placeholder")
    )]
    MissingTag {
        /// The template as written.
        template: String,
        /// The host label.
        host: String,
        /// The tag name.
        tag: String,
    },
    /// A `{...}` that is neither `{host}` nor `{tag:NAME}`, or an unclosed brace.
    #[error("remote path `{template}`, column {column}: {message}")]
    #[diagnostic(
        code(sortie::transfer::bad_placeholder),
        help("placeholders are {{host}} and {{tag:NAME}}; write {{{{ and }}}} for literal braces")
    )]
    BadPlaceholder {
        /// The template as written.
        template: String,
        /// 1-based column of the offending brace.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// Expands `{host}` (the host label) and `{tag:NAME}` (an inventory tag) in `template`;
/// `{{` and `}}` are literal braces.
pub fn expand_remote(
    template: &str,
    host: &str,
    tags: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.char_indices().peekable();
    let bad = |col: usize, message: &str| TemplateError::BadPlaceholder {
        template: template.to_string(),
        column: col + 1,
        message: message.to_string(),
    };
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '}' => return Err(bad(i, "unmatched `}`")),
            '{' => {
                let rest = &template[i + 1..];
                let end = rest.find('}').ok_or_else(|| bad(i, "unclosed `{`"))?;
                let name = &rest[..end];
                if name == "host" {
                    out.push_str(host);
                } else if let Some(tag) = name.strip_prefix("tag:") {
                    let value = tags.get(tag).ok_or_else(|| TemplateError::MissingTag {
                        template: template.to_string(),
                        host: host.to_string(),
                        tag: tag.to_string(),
                    })?;
                    out.push_str(value);
                } else {
                    return Err(bad(i, &format!("unknown placeholder `{{{name}}}`")));
                }
                // Skip the placeholder's characters.
                while let Some((j, _)) = chars.peek() {
                    if *j > i + end + 1 {
                        break;
                    }
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> BTreeMap<String, String> {
        [("role".to_string(), "master".to_string())].into()
    }

    #[test]
    fn expands_host_tags_and_escapes() {
        assert_eq!(
            expand_remote("/srv/{host}/{tag:role}/{{x}}", "web01", &tags()).unwrap(),
            "/srv/web01/master/{x}"
        );
        assert_eq!(expand_remote("plain", "h", &tags()).unwrap(), "plain");
    }

    #[test]
    fn names_missing_tag_and_bad_placeholders() {
        let e = expand_remote("/a/{tag:az}", "web01", &tags()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "remote path `/a/{tag:az}`: host web01 has no tag `az`"
        );
        let e = expand_remote("/a/{hots}", "h", &tags()).unwrap_err();
        assert!(e.to_string().contains("column 4"), "{e}");
        assert!(
            e.to_string().contains("unknown placeholder `{hots}`"),
            "{e}"
        );
        assert!(expand_remote("/a/{host", "h", &tags()).is_err());
        assert!(expand_remote("/a/}", "h", &tags()).is_err());
    }
}
